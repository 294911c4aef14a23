"""cgen passes the toolchain contract on the host (its gcc build, driven through ctypes), on
both digits models, in fp32 and INT8; and its compatibility checks name what they refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

from deploybench.errors import CompatibilityError, PluginError
from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.runner.preparation import prepare_experiment
from deploybench.spec import Problem
from deploybench.testing.experiments import make_experiment
from deploybench.testing.toolchain_contract import ToolchainContract
from deploybench.toolchains.base import Toolchain
from deploybench.toolchains.cgen.toolchain import CgenToolchain


@pytest.fixture(scope="module", params=["zoo:digits-mlp", "zoo:digits-cnn"])
def problem(request: pytest.FixtureRequest) -> ResolvedProblem:
    return resolve_problem(
        Problem.model_validate({"model": request.param, "dataset": "zoo:digits"})
    )


class TestCgenContract(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        return CgenToolchain()

    @pytest.fixture(
        params=[
            {},
            {"opt_level": "-Os"},
            {"precision": "int8", "calibration_samples": 32},
            {"precision": "int8", "per_channel": True, "activation_type": "uint8"},
        ],
        ids=["fp32", "fp32-Os", "int8", "int8-per-channel-uint8"],
    )
    def config(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


def _erf_model(path: Path) -> Path:
    """64 → Erf → Gemm: Erf is not an operator cgen generates."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [64, 10], [0.01] * 640)
    graph = helper.make_graph(
        [
            helper.make_node("Erf", ["input"], ["erf_out"], name="the_erf"),
            helper.make_node("Gemm", ["erf_out", "w"], ["output"], name="fc"),
        ],
        "erf",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_an_unsupported_operator_is_refused_and_named(tmp_path: Path) -> None:
    experiment = make_experiment(toolchain="cgen", target={"name": "local"})
    problem = {"model": str(_erf_model(tmp_path / "erf.onnx")), "task": "classification"}
    experiment = experiment.model_copy(
        update={"problem": Problem.model_validate({**problem, "dataset": "zoo:digits"})}
    )
    with pytest.raises(CompatibilityError) as caught:
        prepare_experiment(experiment)
    message = str(caught.value)
    assert "unsupported-op" in message and "Erf" in message and "the_erf" in message


def test_dynamic_quantization_in_a_pipeline_is_refused() -> None:
    with pytest.raises(PluginError, match="static-int8"):
        CgenToolchain().parse_config({"pipeline": [{"step": "quantize", "mode": "dynamic-int8"}]})


def test_flat_options_beside_a_pipeline_are_refused() -> None:
    with pytest.raises(PluginError, match="precision"):
        CgenToolchain().parse_config(
            {"precision": "int8", "pipeline": [{"step": "quantize", "mode": "static-int8"}]}
        )


def test_an_explicit_pipeline_quantizes_before_generation(tmp_path: Path) -> None:
    problem = resolve_problem(
        Problem.model_validate({"model": "zoo:digits-mlp", "dataset": "zoo:digits"})
    )
    toolchain = CgenToolchain()
    config = toolchain.parse_config(
        {"pipeline": [{"step": "quantize", "mode": "static-int8", "calibration_samples": 16}]}
    )
    deployable = toolchain.build(problem, config, tmp_path)
    names = [step.name for step in deployable.steps]
    assert names.index("quantize") < names.index("generate-c") < names.index("compile-host")
    assert deployable.session_config["precision"] == "int8"
    assert deployable.workflow[0]["step"] == "quantize"


def test_int8_is_refused_for_a_tree_ensemble() -> None:
    experiment = make_experiment(
        model="zoo:digits-forest",
        toolchain="cgen",
        config={"precision": "int8"},
        target={"name": "local"},
    )
    with pytest.raises(CompatibilityError, match=r"not-for-trees.*precision"):
        prepare_experiment(experiment)
