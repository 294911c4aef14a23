"""The contract suite on a real architecture, for every toolchain: pytorchcv's ResNet-18 at a
quarter of the width (zoo:resnet18-wd4-digits32, seeded random weights, 3x32x32 digits32
images; its state dict zoo:resnet18-wd4-digits32-torch for PyTorch).

fp32 configs are held to the documented 1e-4 (max abs) against the reference with identical
labels, as on the digits models; so is PyTorch's dynamic int8, which quantizes the final
Linear only and keeps its documented bounds (observed: 98.6 % of labels, no accuracy lost).
ONNX Runtime's and OpenVINO's INT8 configs are not held to the digits bounds (>= 95 % of
labels kept, <= 3 accuracy points lost): with random weights the class margins are smaller
than the rounding noise of 18 int8 layers, so many labels move (observed on the 360
samples: ONNX Runtime static int8 keeps 51.7 %, OpenVINO int8 48.6 %, against 99.4-99.7 %
on the trained digits models) and accuracy is chance either way. They must still keep
:data:`RANDOM_WEIGHTS_MIN_LABEL_AGREEMENT` of the labels, above the 27 % a constant output
would keep (the most frequent reference label), and report an accuracy drop of at most
:data:`RANDOM_WEIGHTS_MAX_ACCURACY_DROP`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.spec import Problem
from deploybench.testing.fakes import FakeToolchain
from deploybench.testing.toolchain_contract import (
    FP32_TOLERANCE,
    DeployableCache,
    Tolerance,
    ToolchainContract,
    default_tolerance,
)
from deploybench.toolchains.base import Toolchain

pytest.importorskip("torch")
pytest.importorskip("pytorchcv")

RANDOM_WEIGHTS_MIN_LABEL_AGREEMENT = 0.35
RANDOM_WEIGHTS_MAX_ACCURACY_DROP = 0.05
RANDOM_WEIGHTS_INT8 = Tolerance(
    max_abs=None,
    min_label_agreement=RANDOM_WEIGHTS_MIN_LABEL_AGREEMENT,
    max_accuracy_drop=RANDOM_WEIGHTS_MAX_ACCURACY_DROP,
)


def _problem(model: str) -> ResolvedProblem:
    return resolve_problem(Problem.model_validate({"model": model, "dataset": "zoo:digits32"}))


@pytest.fixture(scope="module")
def resnet18() -> ResolvedProblem:
    return _problem("zoo:resnet18-wd4-digits32")


@pytest.fixture(scope="module")
def resnet18_torch() -> ResolvedProblem:
    return _problem("zoo:resnet18-wd4-digits32-torch")


class _Resnet18Contract(ToolchainContract):
    """The ONNX ResNet-18, whole dataset compared, 32 samples per call."""

    @pytest.fixture
    def problem(self, resnet18: ResolvedProblem) -> ResolvedProblem:
        return resnet18

    @pytest.fixture
    def functional_batch_size(self) -> int:
        return 32

    @pytest.fixture
    def tolerance(self, config: dict[str, Any]) -> Tolerance:
        if default_tolerance(config) is FP32_TOLERANCE:
            return FP32_TOLERANCE
        return RANDOM_WEIGHTS_INT8


class TestOnnxRuntimeResnet18Contract(_Resnet18Contract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        pytest.importorskip("onnxruntime")
        from deploybench.toolchains.onnxruntime import OnnxRuntimeToolchain

        return OnnxRuntimeToolchain()

    @pytest.fixture(
        params=[
            {"graph_optimization": "all"},
            {"quantization": "static-int8", "calibration_samples": 32},
        ],
        ids=["fp32-all", "static-int8"],
    )
    def config(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


class TestOpenVinoResnet18Contract(_Resnet18Contract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        pytest.importorskip("openvino")
        from deploybench.toolchains.openvino import OpenVinoToolchain

        return OpenVinoToolchain()

    @pytest.fixture(
        params=[{"precision": "f32"}, {"precision": "int8", "calibration_samples": 32}],
        ids=["f32", "int8"],
    )
    def config(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


class TestTvmResnet18Contract(_Resnet18Contract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        pytest.importorskip("tvm")
        from deploybench.toolchains.tvm import TvmToolchain

        return TvmToolchain()

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def tolerance(self) -> Tolerance:
        # TVM's untuned kernels are slow here (~20 ms a sample): 32 samples keep it short.
        return Tolerance(max_abs=FP32_TOLERANCE.max_abs, min_label_agreement=1.0, samples=32)


class TestPyTorchResnet18Contract(ToolchainContract):
    """The same network as a state dict, against PyTorch eager."""

    @pytest.fixture
    def toolchain(self) -> Toolchain:
        from deploybench.toolchains.pytorch import PyTorchToolchain

        return PyTorchToolchain()

    @pytest.fixture
    def problem(self, resnet18_torch: ResolvedProblem) -> ResolvedProblem:
        return resnet18_torch

    @pytest.fixture
    def functional_batch_size(self) -> int:
        return 32

    @pytest.fixture(
        params=[{"mode": "torchscript"}, {"mode": "eager", "quantization": "dynamic-int8"}],
        ids=["torchscript", "eager-int8"],
    )
    def config(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


class TestLiteRtResnet18Contract(TestPyTorchResnet18Contract):
    """The state dict converted by litert-torch (batch 1, 32 invocations per call) against
    PyTorch eager. Dynamic-range int8 quantizes the weights of every convolution, so it is
    held to the random-weights bounds as ONNX Runtime's and OpenVINO's int8 are."""

    @pytest.fixture
    def toolchain(self) -> Toolchain:
        from deploybench.toolchains.litert import LiteRtToolchain

        return LiteRtToolchain()

    @pytest.fixture
    def tolerance(self, config: dict[str, Any]) -> Tolerance:
        if default_tolerance(config) is FP32_TOLERANCE:
            return FP32_TOLERANCE
        return RANDOM_WEIGHTS_INT8

    @pytest.fixture(
        params=[
            pytest.param({"quantization": "none"}, id="fp32", marks=pytest.mark.slow),
            pytest.param({"quantization": "dynamic-int8"}, id="int8", marks=pytest.mark.slow),
        ],
    )
    def config(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


@pytest.fixture(scope="module")
def digits_mlp() -> ResolvedProblem:
    return resolve_problem(
        Problem.model_validate({"model": "zoo:digits-mlp", "dataset": "zoo:digits"})
    )


@pytest.mark.parametrize(
    ("noise", "tolerance", "message"),
    [
        (1e-3, FP32_TOLERANCE, r"360 samples differ by more than 0\.0001"),
        (3.0, RANDOM_WEIGHTS_INT8, r"label agreement 0\.\d+ < 0\.35"),
    ],
    ids=["fp32-max-abs", "int8-labels"],
)
def test_the_contract_catches_outputs_that_drift_from_the_reference(
    digits_mlp: ResolvedProblem, noise: float, tolerance: Tolerance, message: str, tmp_path: Path
) -> None:
    """A toolchain whose outputs are the reference's plus relative noise fails the check."""
    from deploybench.toolchains.onnxruntime import OnnxRuntimeToolchain

    with pytest.raises(AssertionError, match=message):
        ToolchainContract().test_outputs_stay_within_tolerance_of_the_reference(
            toolchain=FakeToolchain(),
            problem=digits_mlp,
            config={"fault": "noise", "noise": noise},
            tolerance=tolerance,
            reference_toolchain=OnnxRuntimeToolchain(),
            deployable_cache=DeployableCache(tmp_path),
            functional_batch_size=32,
        )


def test_the_contract_catches_an_accuracy_drop(digits_mlp: ResolvedProblem, tmp_path: Path) -> None:
    """Labels may move within the agreement bound, but the accuracy drop is checked too."""
    from deploybench.toolchains.onnxruntime import OnnxRuntimeToolchain

    lenient_labels = Tolerance(max_abs=None, min_label_agreement=0.0, max_accuracy_drop=0.03)
    with pytest.raises(AssertionError, match=r"accuracy drop 0\.\d+ > 0\.03"):
        ToolchainContract().test_outputs_stay_within_tolerance_of_the_reference(
            toolchain=FakeToolchain(),
            problem=digits_mlp,
            config={"fault": "noise", "noise": 3.0},
            tolerance=lenient_labels,
            reference_toolchain=OnnxRuntimeToolchain(),
            deployable_cache=DeployableCache(tmp_path),
            functional_batch_size=32,
        )


def test_default_tolerance_follows_the_precision_the_config_asks_for() -> None:
    assert default_tolerance({"graph_optimization": "all"}) is FP32_TOLERANCE
    assert default_tolerance({"precision": "f32"}) is FP32_TOLERANCE
    for config in (
        {"quantization": "static-int8"},
        {"precision": "int8"},
        {"precision": "bf16"},
        {"mode": "eager", "quantization": "dynamic-int8"},
    ):
        reduced = default_tolerance(config)
        assert reduced.max_abs is None and reduced.max_accuracy_drop == 0.03, config
