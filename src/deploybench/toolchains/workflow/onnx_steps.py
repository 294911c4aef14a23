"""Bodies of the shared ONNX steps: torch export and graph simplification. Heavy packages
(torch, onnx, onnxsim, onnxslim, onnxruntime) are imported inside the functions."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deploybench.errors import ModelError
from deploybench.problems.resolved import ResolvedProblem

if TYPE_CHECKING:
    from deploybench.toolchains.workflow.steps import ExportOnnxStep

# Answers may move by float reassociation when constants are folded, never more than this
# (absolute, plus relative to the largest output magnitude).
_ATOL = 1e-4
_RTOL = 1e-4
# Samples the exported graph is compared with eager PyTorch on.
_EXPORT_CHECK_SAMPLES = 8


def export_onnx(problem: ResolvedProblem, target: Path, step: ExportOnnxStep) -> list[str]:
    """Export the problem's PyTorch module to ``target``; return the log lines."""
    import onnx
    import torch

    from deploybench.problems.torch_model import (
        as_output_list,
        build_module,
        example_inputs,
        load_state_dict,
    )

    if problem.torch_module is None:
        raise ModelError("export-onnx needs a PyTorch problem (model.module and a state dict)")
    model = build_module(
        problem.torch_module, problem.torch_kwargs, load_state_dict(problem.model_path)
    )
    example = example_inputs(problem.inputs, batch=2)
    input_names = [spec.name for spec in problem.inputs]
    output_names = [spec.name for spec in problem.outputs]
    lines: list[str] = []
    if step.exporter == "torchscript":
        dynamic_axes = (
            {name: {0: "N"} for name in [*input_names, *output_names]}
            if step.dynamic_batch
            else None
        )
        torch.onnx.export(
            model,
            example,
            str(target),
            input_names=input_names,
            output_names=output_names,
            opset_version=step.opset,
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )
    else:
        batch = torch.export.Dim("N", min=1)
        forward_names = list(_forward_parameters(model))[: len(example)]
        shapes = {name: {0: batch} for name in forward_names} if step.dynamic_batch else None
        torch.onnx.export(
            model,
            example,
            str(target),
            input_names=input_names,
            output_names=output_names,
            opset_version=step.opset,
            dynamic_shapes=shapes,
            dynamo=True,
            external_data=False,
        )
    onnx.checker.check_model(str(target), full_check=True)
    graph = onnx.load(str(target), load_external_data=False).graph
    operators = sorted({node.op_type for node in graph.node})
    lines.append(f"exported {len(graph.node)} nodes, opset {step.opset}: {', '.join(operators)}")
    inputs = problem.load_inputs(limit=_EXPORT_CHECK_SAMPLES)
    with torch.inference_mode():
        eager = as_output_list(model(*(torch.from_numpy(inputs[n]) for n in input_names)))
    reference = {name: t.detach().numpy() for name, t in zip(output_names, eager, strict=True)}
    lines.extend(_compare_with_runtime(target, inputs, reference, "eager PyTorch"))
    return lines


def _forward_parameters(model: object) -> list[str]:
    import inspect

    return list(inspect.signature(model.forward).parameters)  # type: ignore[attr-defined]


def simplify(
    problem: ResolvedProblem, source: Path, target: Path, tool: str, verify_samples: int
) -> list[str]:
    """Simplify ``source`` into ``target`` with onnxsim or onnxslim; return the log lines."""
    import onnx

    model = onnx.load(str(source))
    before = len(model.graph.node)
    if tool == "onnxsim":
        import onnxsim  # type: ignore[import-untyped]

        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise ModelError("onnxsim could not validate the simplified model")
    else:
        import onnxslim  # type: ignore[import-untyped]

        simplified = onnxslim.slim(model)
    onnx.save(simplified, str(target))
    onnx.checker.check_model(str(target), full_check=True)
    after = len(simplified.graph.node)
    lines = [f"{before} nodes -> {after} nodes"]
    if verify_samples:
        inputs = problem.load_inputs(limit=verify_samples)
        reference = _run_onnx(source, inputs)
        if reference is not None:
            lines.extend(_compare_with_runtime(target, inputs, reference, "the input graph"))
    return lines


def _run_onnx(path: Path, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Outputs of ``path`` under ONNX Runtime without graph optimization, or None when ONNX
    Runtime is not installed."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(inputs)), strict=True))


def _compare_with_runtime(
    path: Path,
    inputs: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    against: str,
) -> list[str]:
    """Run ``path`` on ``inputs`` and fail when its outputs moved beyond float noise."""
    produced = _run_onnx(path, inputs)
    if produced is None:
        return [f"not compared with {against}: onnxruntime is not installed"]
    lines = []
    for name, expected in reference.items():
        if name not in produced:
            raise ModelError(f"the converted graph has no output named {name!r}")
        diff = float(np.max(np.abs(produced[name].astype(np.float64) - expected)))
        bound = _ATOL + _RTOL * float(np.max(np.abs(expected)))
        count = next(iter(inputs.values())).shape[0]
        lines.append(
            f"output {name}: max |difference| from {against} {diff:.3g} on {count} samples "
            f"(bound {bound:.3g})"
        )
        if diff > bound:
            raise ModelError(
                f"the converted graph changes output {name!r} by up to {diff:.3g} against "
                f"{against} (bound {bound:.3g})"
            )
    return lines
