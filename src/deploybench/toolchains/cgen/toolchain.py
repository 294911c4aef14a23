"""cgen: ONNX → portable C99 (fp32 or INT8), compiled for the host, aarch64 or a Cortex-M.

The toolchain produces C sources (a ``c-source`` deployable). The host build is compiled here
with gcc into a shared library that the measurement worker drives through ctypes; embedded
targets cross-compile the same sources with their board's startup code and linker script
(``deploybench.targets.embedded``), so one deployable runs everywhere.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from pydantic import BaseModel

from deploybench.plugins.availability import Availability, distribution_version
from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import C_SOURCE, Deployable, Finding, Severity, Toolchain
from deploybench.toolchains.cgen.config import PIPELINE_OPTIONS, CgenConfig
from deploybench.toolchains.cgen.cpus import cpu_findings
from deploybench.toolchains.onnxruntime.steps import OrtQuantizeStep, QuantizeOptions
from deploybench.toolchains.workflow import (
    ExportOnnxStep,
    ModelArtifact,
    WorkflowState,
    WorkflowStep,
    chain_findings,
    require_chain,
    run_workflow,
)
from deploybench.toolchains.workflow.state import ONNX, TORCH

if TYPE_CHECKING:
    from deploybench.toolchains.cgen.codegen import GeneratedModel

SKLEARN = "sklearn"
_SESSION_FACTORY = "deploybench.toolchains.cgen.session:open_session"
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
# Share of a memory at which a fitting model still earns a warning: the harness, the C
# library and the stack need room too.
_TIGHT_FIT = 0.9


class CgenToolchain(Toolchain):
    """ONNX models as generated C: no dynamic allocation, weights in flash, one arena."""

    name: ClassVar[str] = "cgen"
    summary: ClassVar[str] = (
        "C code generator for microcontrollers: ONNX → C99 (fp32, or INT8 from static QDQ "
        "quantization), const weights and one static activation arena; runs on the host, "
        "aarch64 Linux and Cortex-M boards."
    )
    config_model: ClassVar[type[BaseModel]] = CgenConfig
    input_formats: ClassVar[tuple[str, ...]] = (ONNX, TORCH, SKLEARN)
    capabilities: ClassVar[tuple[str, ...]] = (
        "fp32",
        "static-int8-qdq",
        "no-dynamic-allocation",
        "cross-compile",
        "workflow",
        "tree-ensembles",
    )

    @classmethod
    def availability(cls) -> Availability:
        """Needs onnx (reading and shape inference) and onnxruntime (INT8 quantization and the
        reference run); the compilers are checked per target."""
        return Availability.of_modules("onnx", "onnxruntime", extra="embedded")

    @classmethod
    def tool_version(cls) -> str | None:
        """The generator ships with deploybench: its version is deploybench's."""
        from deploybench import __version__

        return __version__

    def reference_config(self) -> BaseModel:
        """Unused: the reference of an ONNX problem is ONNX Runtime without optimization (see
        :func:`deploybench.runner.preparation.reference_toolchain`)."""
        return CgenConfig()

    def workflow(self, config: BaseModel, model_format: str) -> list[WorkflowStep]:
        """The explicit pipeline, or export (torch models) then static INT8 quantization when
        precision is int8."""
        cfg = cast(CgenConfig, config)
        if cfg.pipeline is not None:
            return list(cfg.pipeline)
        if model_format == SKLEARN:
            return []  # trees go straight to C (emlearn)
        steps: list[WorkflowStep] = []
        if model_format == TORCH:
            steps.append(ExportOnnxStep(step="export-onnx"))
        if cfg.precision == "int8":
            steps.append(
                OrtQuantizeStep(
                    step="quantize",
                    mode="static-int8",
                    **cfg.model_dump(include=set(QuantizeOptions.model_fields)),
                )
            )
        return steps

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Workflow chain, target kind and core, every unsupported operator, and whether the
        weights and the arena fit the board's flash and RAM."""
        cfg = cast(CgenConfig, config)
        steps = self.workflow(cfg, problem.model_format)
        if problem.model_format == SKLEARN:
            findings = _tree_findings(cfg)
        else:
            findings = chain_findings(steps, problem.model_format, (ONNX,), self.name)
        if C_SOURCE not in target.executes:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="target-cannot-run-c",
                    message=f"target '{target.name}' cannot run generated C code",
                    fix="pick 'local', 'qemu-cortex-m' or 'qemu-aarch64-linux'",
                )
            )
        findings.extend(cpu_findings(cfg, target))
        quantizes = any(isinstance(step, OrtQuantizeStep) for step in steps)
        already = sorted(_QDQ_OPS.intersection(problem.operators))
        if quantizes and already:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="already-quantized",
                    message=f"the model already holds {', '.join(already)}: it is INT8 already",
                    fix="leave precision at fp32 (the QDQ model is generated as INT8 as it is)",
                )
            )
        if problem.model_format == ONNX:
            findings.extend(self._model_findings(problem, target, quantizes))
        elif problem.model_format == SKLEARN and not findings:
            findings.extend(_tree_memory_findings(problem, target))
        else:
            findings.append(
                Finding(
                    severity=Severity.INFO,
                    code="checked-after-export",
                    message="operators and memory fit of a PyTorch model are checked once it "
                    "is exported to ONNX, at build time",
                )
            )
        return findings

    def _model_findings(
        self, problem: ResolvedProblem, target: TargetInfo, quantizes: bool
    ) -> list[Finding]:
        """Generate the fp32 code once into a scratch folder: the generator itself names
        unsupported operators and knows the exact weight and arena sizes."""
        import onnx

        from deploybench.toolchains.cgen.codegen import check_model, generate_c

        model = onnx.load(str(problem.model_path))
        issues = check_model(model)
        if issues:
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="unsupported-op",
                    subject=issue.op_type,
                    message=issue.render(),
                    fix="replace the operator in the model, or deploy with another toolchain",
                )
                for issue in issues
            ]
        with tempfile.TemporaryDirectory(prefix="deploybench-cgen-check-") as scratch:
            generated = generate_c(model, Path(scratch))
        return memory_findings(generated, target, quantized=quantizes)

    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Run the workflow, generate the C sources, and compile the host library."""
        import onnx

        from deploybench.toolchains.cgen.codegen import generate_c
        from deploybench.toolchains.cgen.codegen.host import compile_host_library

        cfg = cast(CgenConfig, config)
        state = WorkflowState.start(problem, workdir)
        onnx_version = distribution_version("onnx") or "not installed"
        state.tool_versions.update({"onnx": onnx_version, "cgen": self.tool_version() or ""})
        steps = self.workflow(cfg, problem.model_format)
        if problem.model_format == SKLEARN:
            _refuse(_tree_findings(cfg))
            with state.pipeline.step(
                "validate",
                "skops",
                distribution_version("skops") or "not installed",
                {"input.skops": problem.model_path},
            ) as step:
                current = step.output(workdir / "model.skops")
                shutil.copyfile(problem.model_path, current)
                step.log(f"estimator: {', '.join(problem.operators)}")
            state.current = ModelArtifact(SKLEARN, current)
            state.keep(current, "model")
        else:
            require_chain(steps, problem.model_format, (ONNX,), self.name)
        if problem.model_format == ONNX:
            state.validate_onnx(onnx_version)
        final = run_workflow(steps, state)

        source_dir = workdir / "c"
        with state.pipeline.step(
            "generate-c", "cgen", self.tool_version() or "", {final.path.name: final.path}
        ) as step:
            if final.format == SKLEARN:
                from deploybench.toolchains.cgen.codegen.trees import generate_trees_c

                generated = generate_trees_c(final.path, source_dir, prefix=cfg.prefix)
            else:
                generated = generate_c(onnx.load(str(final.path)), source_dir, prefix=cfg.prefix)
            for path in _generated_files(source_dir):
                step.output(path)
            step.log(_generation_summary(generated))
        for path in _generated_files(source_dir):
            state.keep(path, "source")

        from deploybench.targets.embedded.tools import first_line_of

        gcc_version = first_line_of(["gcc", "--version"]) or "not installed"
        with state.pipeline.step(
            "compile-host",
            "gcc",
            gcc_version,
            {generated.source.name: generated.source},
            {"opt_level": cfg.opt_level},
        ) as step:
            library = compile_host_library(generated, workdir / "host", opt_level=cfg.opt_level)
            step.output(library)
        state.keep(library, "host-library")
        state.tool_versions["gcc"] = gcc_version

        deployable = Deployable(
            toolchain=self.name,
            kind=C_SOURCE,
            session_factory=_SESSION_FACTORY,
            entry=generated.source.relative_to(workdir).as_posix(),
            files=state.files,
            session_config={
                "prefix": cfg.prefix,
                "precision": generated.precision,
                "input_size": math.prod(generated.input_shape),
                "output_size": math.prod(generated.output_shape),
                "input_shape": list(generated.input_shape),
                "output_shape": list(generated.output_shape),
                "weights_bytes": generated.weights_bytes,
                "arena_bytes": generated.arena_bytes,
                "host_library": library.relative_to(workdir).as_posix(),
                "sources": [p.relative_to(workdir).as_posix() for p in _c_files(source_dir)],
                "include_dir": source_dir.relative_to(workdir).as_posix(),
                "compile": {
                    "opt_level": cfg.opt_level,
                    "cpu": cfg.cpu,
                    "float_abi": cfg.float_abi,
                },
            },
            inputs=problem.inputs,
            outputs=problem.outputs,
            steps=state.pipeline.steps,
            tool_versions=state.tool_versions,
            workflow=[step.model_dump() for step in steps],
            root=workdir,
        )
        deployable.write_manifest()
        return deployable


def _tree_findings(config: CgenConfig) -> list[Finding]:
    """What cgen cannot do with a tree ensemble: quantize it or run an ONNX pipeline on it."""
    refused = [
        option
        for option in (*PIPELINE_OPTIONS, "pipeline")
        if option in config.model_fields_set
        and not (option == "precision" and config.precision == "fp32")
    ]
    return [
        Finding(
            severity=Severity.ERROR,
            code="not-for-trees",
            subject=option,
            message=f"toolchain.config.{option} applies to neural networks (ONNX), not to "
            "scikit-learn tree ensembles, which are generated as they are (float thresholds, "
            "8-bit leaf proportions)",
            fix=f"remove {option}",
        )
        for option in refused
    ]


def _tree_memory_findings(problem: ResolvedProblem, target: TargetInfo) -> list[Finding]:
    """Generate the trees once into a scratch folder to compare their size with the board."""
    from deploybench.toolchains.cgen.codegen.trees import generate_trees_c

    with tempfile.TemporaryDirectory(prefix="deploybench-cgen-check-") as scratch:
        generated = generate_trees_c(problem.model_path, Path(scratch))
    return memory_findings(generated, target, quantized=False)


def _refuse(findings: list[Finding]) -> None:
    if findings:
        from deploybench.errors import CompatibilityError

        raise CompatibilityError("; ".join(f.render() for f in findings))


def memory_findings(
    generated: GeneratedModel, target: TargetInfo, quantized: bool
) -> list[Finding]:
    """Refuse a model whose weights exceed the target's flash or whose arena exceeds its RAM
    (REQ guidance hooks); warn when it fills more than 90 % of either.

    ``generated`` is the fp32 code; an INT8 build stores weights in 1 byte instead of 4, so
    its sizes are estimated as a quarter (int32 biases make the real figure a little larger).
    """
    memories = {memory.kind: memory for memory in target.memories}
    flash, ram = memories.get("flash"), memories.get("ram")
    if flash is None or ram is None or target.kind == "host":
        return []
    divisor = 4 if quantized else 1
    where = str(target.extra.get("board", target.name))
    how = "estimated for INT8 as a quarter of the fp32 size" if quantized else "exact"
    findings: list[Finding] = []
    for label, needed, memory in (
        ("weights", generated.weights_bytes // divisor, flash),
        ("activation arena", generated.arena_bytes // divisor, ram),
    ):
        share = needed / memory.size_bytes
        text = (
            f"the model's {label} need {needed} bytes ({how}) and {where}'s "
            f"{memory.name} holds {memory.size_bytes} bytes ({share:.0%})"
        )
        if share > 1.0:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="does-not-fit",
                    subject=memory.name,
                    message=text,
                    fix="pick a board with more memory, quantize to int8, or shrink the model",
                )
            )
        elif share > _TIGHT_FIT:
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    code="tight-fit",
                    subject=memory.name,
                    message=text + "; the harness, C library and stack need room too",
                )
            )
    return findings


def _c_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.c"))


def _generated_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def _generation_summary(generated: GeneratedModel) -> str:
    operators = ", ".join(f"{op} x{count}" for op, count in sorted(generated.operators.items()))
    lines = [
        f"precision {generated.precision}; input {generated.input_name} "
        f"{list(generated.input_shape)} -> output {generated.output_name} "
        f"{list(generated.output_shape)}",
        f"operators: {operators}",
        f"weights {generated.weights_bytes} bytes (const, flash); "
        f"arena {generated.arena_bytes} bytes (static, RAM)",
    ]
    lines.extend(f"folded {item}" for item in generated.folded)
    return "\n".join(lines)
