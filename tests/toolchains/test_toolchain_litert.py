"""The LiteRT toolchain: the contract suite (fp32 and dynamic-int8 with XNNPACK, fp32 without),
agreement with PyTorch eager, a fixed batch above 1, and refusals.

The converter environment (litert-torch, ~2 GB) is built once per test session and each
model is converted once (later builds reuse the cached conversion); tests that need either
are marked slow.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploybench.errors import PluginError
from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.spec import Problem
from deploybench.targets.local import LocalCpuTarget
from deploybench.testing.toolchain_contract import ToolchainContract
from deploybench.toolchains.base import Deployable, SessionOptions, Severity, Toolchain
from deploybench.toolchains.envs import ToolchainEnvironment
from deploybench.toolchains.litert import LiteRtConfig, LiteRtToolchain

pytest.importorskip("ai_edge_litert")
torch = pytest.importorskip("torch")

# Documented tolerances (GUIDE.md): fp32 within 1e-4 of PyTorch eager (max absolute logit
# difference) with identical labels; dynamic-range int8 agrees with eager on at least 98% of
# the labels and loses at most 3 accuracy points on digits.
FP32_MAX_ABS = 1e-4
INT8_MIN_LABEL_AGREEMENT = 0.98
INT8_MAX_ACCURACY_DROP = 0.03

MLP_SOURCE = textwrap.dedent(
    """
    from torch import nn


    class Mlp(nn.Module):
        def __init__(self, hidden: int = 32) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

        def forward(self, x):
            return self.body(x)
    """
)

FP32 = {"quantization": "none", "xnnpack": True}
INT8 = {"quantization": "dynamic-int8", "xnnpack": True}
FP32_NO_XNNPACK = {"quantization": "none", "xnnpack": False}


@pytest.fixture(scope="session")
def converter_env() -> ToolchainEnvironment:
    """litert-torch's environment, built once per session (the slow part of this module)."""
    from deploybench.toolchains.litert.conversion import converter_environment

    return converter_environment()


@pytest.fixture(scope="module")
def cnn() -> ResolvedProblem:
    return resolve_problem(
        Problem.model_validate({"model": "zoo:digits-cnn-torch", "dataset": "zoo:digits"})
    )


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> ResolvedProblem:
    from torch import nn

    root = tmp_path_factory.mktemp("mlp")
    module = root / "net.py"
    module.write_text(MLP_SOURCE)
    torch.manual_seed(0)
    holder = nn.Module()
    holder.body = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    torch.save(holder.state_dict(), root / "weights.pt")
    model = {
        "format": "pytorch",
        "path": str(root / "weights.pt"),
        "module": f"{module}:Mlp",
        "inputs": [{"name": "input", "shape": ["N", 64], "dtype": "float32"}],
        "outputs": ["logits"],
    }
    return resolve_problem(
        Problem.model_validate({"model": model, "dataset": "zoo:digits", "task": "classification"})
    )


class TestLiteRtContract(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        return LiteRtToolchain()

    @pytest.fixture
    def problem(self, cnn: ResolvedProblem) -> ResolvedProblem:
        return cnn

    @pytest.fixture(
        params=[
            pytest.param(FP32, id="fp32-xnnpack", marks=pytest.mark.slow),
            pytest.param(INT8, id="int8-xnnpack", marks=pytest.mark.slow),
            pytest.param(FP32_NO_XNNPACK, id="fp32-builtin", marks=pytest.mark.slow),
        ]
    )
    def config(
        self, request: pytest.FixtureRequest, converter_env: ToolchainEnvironment
    ) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


def _build(problem: ResolvedProblem, raw: dict[str, Any], root: Path) -> Deployable:
    toolchain = LiteRtToolchain()
    return toolchain.build(problem, toolchain.parse_config(raw), root)


def _run(deployable: Deployable, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
    from deploybench.toolchains.litert.session import open_session

    session = open_session(deployable, SessionOptions(threads=1))
    try:
        logits = np.asarray(session.run(session.prepare(inputs))[0])
        return logits, session.info()
    finally:
        session.close()


def _eager(problem: ResolvedProblem, inputs: dict[str, np.ndarray]) -> np.ndarray:
    from deploybench.problems.torch_model import build_module, load_state_dict

    assert problem.torch_module is not None
    model = build_module(
        problem.torch_module, problem.torch_kwargs, load_state_dict(problem.model_path)
    )
    with torch.inference_mode():
        return np.asarray(model(torch.from_numpy(inputs["input"])).numpy())


@pytest.mark.slow
@pytest.mark.parametrize("raw", [FP32, FP32_NO_XNNPACK], ids=["xnnpack", "builtin"])
def test_fp32_matches_eager_on_the_dataset(
    cnn: ResolvedProblem, raw: dict[str, Any], converter_env: ToolchainEnvironment, tmp_path: Path
) -> None:
    deployable = _build(cnn, raw, tmp_path)
    inputs = cnn.load_inputs()
    logits, info = _run(deployable, inputs)
    reference = _eager(cnn, inputs)
    assert np.abs(logits - reference).max() <= FP32_MAX_ABS
    assert (logits.argmax(1) == reference.argmax(1)).all()
    # Converted at batch 1: one invoke per sample.
    assert info["batch"] == 1 and info["invocations_per_batch"] == cnn.n_samples
    assert info["xnnpack"] is raw["xnnpack"]
    assert (info["xnnpack_delegated_nodes"] > 0) is raw["xnnpack"]
    assert info["precision"] == "fp32"
    assert [s.name for s in deployable.steps] == ["convert", "load"]
    conversion = json.loads((deployable.root / "conversion.json").read_text())
    assert conversion["versions"]["litert-torch"] == "0.10.0"
    assert conversion["max_abs_difference"] <= FP32_MAX_ABS


@pytest.mark.slow
def test_dynamic_int8_agrees_with_eager_and_reports_the_drop(
    cnn: ResolvedProblem, converter_env: ToolchainEnvironment, tmp_path: Path
) -> None:
    deployable = _build(cnn, INT8, tmp_path)
    assert [s.name for s in deployable.steps] == ["convert", "quantize", "evaluate", "load"]
    assert deployable.entry == "model-int8.tflite"
    sizes = {f.path: f.size for f in deployable.files}
    assert sizes["model-int8.tflite"] < sizes["model.tflite"] / 2
    inputs = cnn.load_inputs()
    logits, info = _run(deployable, inputs)
    reference = _eager(cnn, inputs)
    agreement = float(np.mean(logits.argmax(1) == reference.argmax(1)))
    assert agreement >= INT8_MIN_LABEL_AGREEMENT
    report = json.loads((deployable.root / "quantization_report.json").read_text())
    assert report["samples"] == cnn.n_samples
    assert report["label_agreement"] >= INT8_MIN_LABEL_AGREEMENT
    assert report["accuracy_drop"] <= INT8_MAX_ACCURACY_DROP
    evaluate = next(s for s in deployable.steps if s.name == "evaluate")
    assert "accuracy drop" in evaluate.log
    assert info["quantization"] == "dynamic-int8" and info["xnnpack_delegated_nodes"] > 0
    assert deployable.tool_versions["ai-edge-quantizer"] == "0.10.0"


@pytest.mark.slow
def test_a_fixed_batch_runs_multiples_of_it(
    mlp: ResolvedProblem, converter_env: ToolchainEnvironment, tmp_path: Path
) -> None:
    from deploybench.toolchains.litert.session import open_session

    deployable = _build(mlp, {**FP32, "batch": 2}, tmp_path)
    assert deployable.session_config["batch"] == 2
    inputs = mlp.load_inputs(limit=6)
    reference = _eager(mlp, inputs)
    session = open_session(deployable, SessionOptions(threads=1))
    for size, invocations in ((2, 1), (6, 3)):
        (logits,) = session.run(session.prepare({"input": inputs["input"][:size]}))
        assert session.info()["invocations_per_batch"] == invocations
        assert np.abs(logits - reference[:size]).max() <= FP32_MAX_ABS
    with pytest.raises(ValueError, match="fixed batch of 2 and cannot take a batch of 3"):
        session.prepare({"input": inputs["input"][:3]})
    session.close()


@pytest.mark.slow
def test_explicit_pipeline_torch_to_litert_to_int8(
    cnn: ResolvedProblem, converter_env: ToolchainEnvironment, tmp_path: Path
) -> None:
    pipeline = [{"step": "convert", "batch": 1}, {"step": "quantize", "mode": "dynamic-int8"}]
    deployable = _build(cnn, {"pipeline": pipeline}, tmp_path)
    assert [s.name for s in deployable.steps] == ["convert", "quantize", "evaluate", "load"]
    assert deployable.workflow == pipeline
    assert deployable.session_config["quantization"] == "dynamic-int8"
    assert deployable.entry == "model-int8.tflite"


def test_an_onnx_problem_is_refused_with_the_way_out() -> None:
    onnx_problem = resolve_problem(
        Problem.model_validate({"model": "zoo:digits-mlp", "dataset": "zoo:digits"})
    )
    findings = LiteRtToolchain().check(onnx_problem, LocalCpuTarget().describe(), LiteRtConfig())
    (finding,) = findings
    assert finding.severity is Severity.ERROR and finding.code == "unsupported-format"
    assert "PyTorch model" in (finding.fix or "") and "onnxruntime" in (finding.fix or "")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"quantization": "int4"}, "'none' or 'dynamic-int8'"),
        ({"xnnpack": "sometimes"}, "toolchain.config.xnnpack"),
        ({"threads": 0}, "toolchain.config.threads"),
        ({"batch": 0}, "toolchain.config.batch"),
        ({"pipeline": [{"step": "quantize"}]}, "[convert] or [convert, quantize]"),
        ({"pipeline": [{"step": "optimize"}]}, "'convert', 'quantize'"),
        (
            {"quantization": "dynamic-int8", "pipeline": [{"step": "convert"}]},
            "not beside an explicit pipeline",
        ),
    ],
)
def test_bad_config_values_name_what_is_allowed(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(PluginError) as info:
        LiteRtToolchain().parse_config(raw)
    assert expected in str(info.value)


def test_check_findings(cnn: ResolvedProblem) -> None:
    target = LocalCpuTarget().describe()
    toolchain = LiteRtToolchain()
    codes = {f.code for f in toolchain.check(cnn, target, LiteRtConfig(batch=4))}
    assert "fixed-batch" in codes
    many = LiteRtConfig(threads=(target.cores or 1) + 1)
    assert "threads-above-cores" in {f.code for f in toolchain.check(cnn, target, many)}
    assert all(f.severity is not Severity.ERROR for f in toolchain.check(cnn, target, many))


def test_reference_config_is_fp32_on_builtin_kernels() -> None:
    reference = LiteRtToolchain().reference_config()
    assert reference == LiteRtConfig(quantization="none", xnnpack=False)
