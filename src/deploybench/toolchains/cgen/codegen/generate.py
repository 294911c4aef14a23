"""``generate_c``: ONNX model -> self-contained model.c + model.h."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploybench.toolchains.cgen.codegen.arena import plan_arena
from deploybench.toolchains.cgen.codegen.c_writer import write_header, write_source
from deploybench.toolchains.cgen.codegen.issues import CodegenError, OperatorIssue
from deploybench.toolchains.cgen.codegen.lowering import lower_graph
from deploybench.toolchains.cgen.codegen.support import analyse_model

_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class GeneratedModel:
    """What ``generate_c`` wrote and what it costs on a device."""

    source: Path
    header: Path
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    precision: str
    weights_bytes: int
    arena_bytes: int
    operators: dict[str, int]
    folded: list[str]
    prefix: str = "dbm"  # C symbol prefix: <prefix>_run, <PREFIX>_INPUT_SIZE, ...
    # Extra sources/headers beside model.c/model.h; empty today (kernels are inlined).
    support_files: list[Path] = field(default_factory=list)


def generate_c(model: Any, out_dir: Path, prefix: str = "dbm") -> GeneratedModel:
    """Generate ``model.c`` and ``model.h`` into ``out_dir`` (created if missing).

    The C API is ``int <prefix>_run(const float *input, float *output)`` for one sample plus
    ``<PREFIX>_INPUT_SIZE``, ``<PREFIX>_OUTPUT_SIZE`` and ``<PREFIX>_ARENA_BYTES``. A QDQ model
    is generated as int8 (its input and output stay float). Raises ``CodegenError`` listing
    every issue ``check_model`` finds."""
    if not _PREFIX.match(prefix):
        raise CodegenError([OperatorIssue("prefix", prefix, "prefix must be a C identifier")])
    graph, issues = analyse_model(model)
    if graph is None or issues:
        raise CodegenError(issues)
    quantized = any(node.op_type == "QuantizeLinear" for node in graph.nodes)
    program = lower_graph(graph)
    plan = plan_arena(program)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = out_dir / "model.h"
    source = out_dir / "model.c"
    header.write_text(write_header(program, plan, prefix), encoding="utf-8")
    source.write_text(write_source(program, plan, prefix, header.name), encoding="utf-8")
    operators = Counter(step.op_type for step in program.steps)
    return GeneratedModel(
        source=source,
        header=header,
        input_name=program.input_name,
        input_shape=program.buffers[program.input_name].shape,
        output_name=program.output_name,
        output_shape=program.buffers[program.output_name].shape,
        precision="int8" if quantized else "fp32",
        weights_bytes=program.weights_bytes,
        arena_bytes=plan.total_bytes,
        operators=dict(sorted(operators.items())),
        folded=list(program.folded),
        prefix=prefix,
    )
