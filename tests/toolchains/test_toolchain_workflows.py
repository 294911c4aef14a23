"""Deployment workflows (REQ-00022): explicit pipelines of configurable steps, default
pipelines, PyTorch models through ONNX or straight to OpenVINO, refusals of pipelines that
cannot work, and the PyTorch-eager reference of a torch problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploybench.errors import CompatibilityError, PluginError
from deploybench.harness.worker import _import_factory
from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.problems.torch_model import build_module, load_state_dict
from deploybench.runner import run_experiment
from deploybench.runner.preparation import reference_toolchain
from deploybench.spec import Problem
from deploybench.targets.local import LocalCpuTarget
from deploybench.testing.experiments import make_experiment
from deploybench.toolchains.base import Deployable, SessionOptions, Severity, Toolchain
from deploybench.toolchains.onnxruntime import OnnxRuntimeToolchain
from deploybench.toolchains.openvino.toolchain import OpenVinoToolchain
from deploybench.toolchains.tvm.toolchain import TvmToolchain

torch = pytest.importorskip("torch")

# Documented in the toolchain guides: an fp32 chain stays within 1e-4 of eager PyTorch on
# the digits logits; INT8 keeps at least 95 % of eager's labels.
FP32_MAX_ABS = 1e-4
INT8_MIN_AGREEMENT = 0.95

TORCH_TO_ORT_INT8 = [
    {"step": "export-onnx", "opset": 17},
    {"step": "simplify", "tool": "onnxsim"},
    {"step": "quantize", "mode": "static-int8", "calibration_samples": 32},
    {"step": "optimize", "level": "extended"},
]


@pytest.fixture(scope="module")
def torch_problem() -> ResolvedProblem:
    return resolve_problem(
        Problem.model_validate({"model": "zoo:digits-cnn-torch", "dataset": "zoo:digits"})
    )


@pytest.fixture(scope="module")
def onnx_problem() -> ResolvedProblem:
    return resolve_problem(
        Problem.model_validate({"model": "zoo:digits-cnn", "dataset": "zoo:digits"})
    )


@pytest.fixture(scope="module")
def eager(torch_problem: ResolvedProblem) -> np.ndarray:
    assert torch_problem.torch_module is not None
    model = build_module(
        torch_problem.torch_module,
        torch_problem.torch_kwargs,
        load_state_dict(torch_problem.model_path),
    )
    inputs = torch_problem.load_inputs()["input"]
    with torch.inference_mode():
        logits: np.ndarray = model(torch.from_numpy(inputs)).numpy()
    return logits


def _build(
    toolchain: Toolchain, problem: ResolvedProblem, raw: dict[str, Any], tmp_path: Path
) -> Deployable:
    config = toolchain.parse_config(raw)
    errors = [
        f
        for f in toolchain.check(problem, LocalCpuTarget().describe(), config)
        if f.severity is Severity.ERROR
    ]
    assert not errors, [f.render() for f in errors]
    return toolchain.build(problem, config, tmp_path / "build")


def _outputs(deployable: Deployable, problem: ResolvedProblem) -> np.ndarray:
    assert deployable.session_factory is not None
    session = _import_factory(deployable.session_factory)(deployable, SessionOptions(threads=1))
    try:
        inputs = problem.load_inputs()
        return np.asarray(session.run(session.prepare(inputs))[0])
    finally:
        session.close()


def test_explicit_torch_to_ort_int8_pipeline_runs_each_step_in_order(
    torch_problem: ResolvedProblem, eager: np.ndarray, tmp_path: Path
) -> None:
    deployable = _build(
        OnnxRuntimeToolchain(), torch_problem, {"pipeline": TORCH_TO_ORT_INT8}, tmp_path
    )
    names = [step.name for step in deployable.steps]
    assert names == ["export-onnx", "simplify", "preprocess", "quantize", "optimize"]
    # Each step hashes what it read and wrote; each one reads what the previous one wrote.
    for before, after in zip(deployable.steps, deployable.steps[1:], strict=False):
        assert set(after.inputs.values()) <= set(before.outputs.values())
    assert deployable.steps[0].inputs == {torch_problem.model_path.name: torch_problem.model_sha256}
    assert deployable.steps[0].tool == "torch.onnx" and deployable.steps[0].version
    assert "max |difference| from eager PyTorch" in deployable.steps[0].log
    assert "nodes ->" in deployable.steps[1].log
    assert deployable.entry == "optimized.onnx"
    assert [item["step"] for item in deployable.workflow] == [
        "export-onnx",
        "simplify",
        "quantize",
        "optimize",
    ]
    assert deployable.workflow[2]["calibration_samples"] == 32
    assert "torch" in deployable.tool_versions and "onnxsim" in deployable.tool_versions
    deployable.verify()
    manifest = json.loads((deployable.root / "deployable.json").read_text())
    assert manifest["workflow"] == deployable.workflow

    logits = _outputs(deployable, torch_problem)
    agreement = float(np.mean(logits.argmax(1) == eager.argmax(1)))
    assert agreement >= INT8_MIN_AGREEMENT, agreement


def test_default_pipeline_of_a_torch_problem_exports_then_optimizes(
    torch_problem: ResolvedProblem, eager: np.ndarray, tmp_path: Path
) -> None:
    deployable = _build(OnnxRuntimeToolchain(), torch_problem, {}, tmp_path)
    assert [step.name for step in deployable.steps] == ["export-onnx", "optimize"]
    assert [item["step"] for item in deployable.workflow] == ["export-onnx", "optimize"]
    logits = _outputs(deployable, torch_problem)
    assert float(np.max(np.abs(logits - eager))) <= FP32_MAX_ABS


def test_default_pipeline_of_an_onnx_problem_is_unchanged(
    onnx_problem: ResolvedProblem, tmp_path: Path
) -> None:
    deployable = _build(
        OnnxRuntimeToolchain(),
        onnx_problem,
        {"quantization": "dynamic-int8", "graph_optimization": "basic"},
        tmp_path,
    )
    assert [step.name for step in deployable.steps] == [
        "validate",
        "preprocess",
        "quantize",
        "optimize",
    ]
    assert deployable.workflow[0] == {
        "step": "quantize",
        "mode": "dynamic-int8",
        "per_channel": False,
        "reduce_range": False,
        "activation_type": "int8",
        "calibration_samples": 64,
        "calibration_method": "minmax",
        "preprocess": True,
    }


def test_simplify_with_onnxslim_checks_the_answers_did_not_change(
    onnx_problem: ResolvedProblem, tmp_path: Path
) -> None:
    deployable = _build(
        OnnxRuntimeToolchain(),
        onnx_problem,
        {"pipeline": [{"step": "simplify", "tool": "onnxslim", "verify_samples": 8}]},
        tmp_path,
    )
    simplify = deployable.steps[1]
    assert simplify.name == "simplify" and simplify.tool == "onnxslim"
    assert "on 8 samples" in simplify.log
    assert deployable.entry == "simplified.onnx"


def test_a_step_that_receives_the_wrong_format_is_refused_and_named(
    torch_problem: ResolvedProblem, tmp_path: Path
) -> None:
    toolchain = OnnxRuntimeToolchain()
    config = toolchain.parse_config(
        {"pipeline": [{"step": "simplify"}, {"step": "quantize", "mode": "dynamic-int8"}]}
    )
    findings = toolchain.check(torch_problem, LocalCpuTarget().describe(), config)
    mismatch = [f for f in findings if f.code == "pipeline-format-mismatch"]
    assert mismatch and mismatch[0].severity is Severity.ERROR
    assert "pipeline[0] (simplify)" in mismatch[0].message
    assert "torch" in mismatch[0].message and "export-onnx" in (mismatch[0].fix or "")
    with pytest.raises(CompatibilityError, match="pipeline-format-mismatch"):
        toolchain.build(torch_problem, config, tmp_path / "build")
    assert not (tmp_path / "build" / "simplified.onnx").exists()


def test_a_pipeline_that_leaves_a_torch_model_is_refused(torch_problem: ResolvedProblem) -> None:
    toolchain = TvmToolchain()
    findings = toolchain.check(
        torch_problem, LocalCpuTarget().describe(), toolchain.parse_config({"pipeline": []})
    )
    assert any(
        f.code == "pipeline-ends-in-wrong-format" and "export-onnx" in (f.fix or "")
        for f in findings
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"pipeline": [{"step": "optimise"}]}, "'export-onnx', 'simplify', 'quantize', 'optimize'"),
        ({"pipeline": [{"step": "quantize", "mode": "int4"}]}, "'dynamic-int8' or 'static-int8'"),
        (
            {"pipeline": [{"step": "simplify", "tool": "onnx-simplifier"}]},
            "'onnxsim' or 'onnxslim'",
        ),
        (
            {"quantization": "static-int8", "pipeline": [{"step": "optimize"}]},
            "set quantization inside the pipeline's steps",
        ),
        ({"pipeline": [{"step": "export-onnx", "opset": 5}]}, "pipeline[0].export-onnx.opset"),
    ],
)
def test_bad_pipelines_name_the_field_and_the_allowed_values(
    raw: dict[str, Any], expected: str
) -> None:
    with pytest.raises(PluginError) as caught:
        OnnxRuntimeToolchain().parse_config(raw)
    assert expected in str(caught.value)


def test_openvino_converts_a_torch_model_directly(
    torch_problem: ResolvedProblem, eager: np.ndarray, tmp_path: Path
) -> None:
    deployable = _build(OpenVinoToolchain(), torch_problem, {}, tmp_path)
    assert [step.name for step in deployable.steps] == ["convert", "package"]
    assert deployable.steps[0].parameters["from"] == "torch"
    logits = _outputs(deployable, torch_problem)
    assert float(np.max(np.abs(logits - eager))) <= FP32_MAX_ABS


def test_openvino_pipeline_through_onnx_with_int8(
    torch_problem: ResolvedProblem, eager: np.ndarray, tmp_path: Path
) -> None:
    pipeline = [
        {"step": "export-onnx"},
        {"step": "convert"},
        {"step": "quantize", "calibration_samples": 64},
    ]
    deployable = _build(OpenVinoToolchain(), torch_problem, {"pipeline": pipeline}, tmp_path)
    assert [step.name for step in deployable.steps] == [
        "export-onnx",
        "convert",
        "quantize",
        "evaluate",
        "package",
    ]
    assert deployable.steps[1].parameters["from"] == "onnx"
    assert deployable.session_config["precision"] == "int8"
    report = json.loads((deployable.root / "quantization_report.json").read_text())
    assert "accuracy_drop" in report
    logits = _outputs(deployable, torch_problem)
    assert float(np.mean(logits.argmax(1) == eager.argmax(1))) >= INT8_MIN_AGREEMENT


def test_openvino_refuses_precision_int8_beside_a_pipeline() -> None:
    with pytest.raises(PluginError, match="quantize"):
        OpenVinoToolchain().parse_config({"precision": "int8", "pipeline": [{"step": "convert"}]})


def test_tvm_compiles_a_torch_model_through_onnx(
    torch_problem: ResolvedProblem, eager: np.ndarray, tmp_path: Path
) -> None:
    deployable = _build(TvmToolchain(), torch_problem, {"opt_level": 2}, tmp_path)
    assert [step.name for step in deployable.steps][:2] == ["export-onnx", "import"]
    assert deployable.workflow[-1]["step"] == "compile"
    logits = _outputs(deployable, torch_problem)
    assert float(np.max(np.abs(logits - eager))) <= FP32_MAX_ABS


def test_the_reference_of_a_torch_problem_is_pytorch_eager(tmp_path: Path) -> None:
    assert reference_toolchain("torch", OnnxRuntimeToolchain()).name == "pytorch"
    assert reference_toolchain("onnx", OnnxRuntimeToolchain()).name == "onnxruntime"
    outcome = run_experiment(
        make_experiment(
            model="zoo:digits-cnn-torch",
            config={"pipeline": [{"step": "export-onnx"}, {"step": "simplify"}]},
        ),
        workdir=tmp_path,
    )
    record = outcome.record
    assert record.status == "succeeded", record.error
    assert record.reference is not None
    assert record.reference["toolchain"] == "pytorch"
    assert record.reference["config"]["mode"] == "eager"
    assert [step.name for step in record.steps] == ["export-onnx", "simplify"]
    assert record.metrics["semantic_preservation"]["ratio"] == 1.0
