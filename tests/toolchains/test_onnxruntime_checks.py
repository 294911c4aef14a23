"""ONNX Runtime's compatibility checks name the problem before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.spec import Problem
from deploybench.targets.local import LocalCpuTarget
from deploybench.toolchains.base import Severity
from deploybench.toolchains.onnxruntime import OnnxRuntimeConfig, OnnxRuntimeToolchain
from deploybench.toolchains.pipeline import BuildError


def _problem(model: Path, dataset: Path, task: str = "classification") -> ResolvedProblem:
    return resolve_problem(
        Problem.model_validate(
            {"model": {"path": str(model)}, "dataset": {"path": str(dataset)}, "task": task}
        )
    )


def _write(
    tmp_path: Path,
    nodes: list[onnx.NodeProto],
    domain_opsets: list[onnx.OperatorSetIdProto] | None = None,
) -> tuple[Path, Path]:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    model = helper.make_model(graph, opset_imports=domain_opsets or [helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    return path, data


def test_unavailable_provider_is_an_error() -> None:
    problem = resolve_problem(
        Problem.model_validate({"model": "zoo:digits-mlp", "dataset": "zoo:digits"})
    )
    toolchain = OnnxRuntimeToolchain()
    config = toolchain.parse_config({"execution_providers": ["CUDAExecutionProvider"]})
    findings = toolchain.check(problem, LocalCpuTarget().describe(), config)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    assert [f.code for f in errors] == ["provider-unavailable"]
    assert "CPUExecutionProvider" in (errors[0].fix or "")


def test_dynamic_quantization_of_a_model_without_matmul_warns(tmp_path: Path) -> None:
    model, data = _write(tmp_path, [helper.make_node("Relu", ["x"], ["y"])])
    toolchain = OnnxRuntimeToolchain()
    findings = toolchain.check(
        _problem(model, data),
        LocalCpuTarget().describe(),
        OnnxRuntimeConfig(quantization="dynamic-int8"),
    )
    assert "nothing-to-quantize" in {f.code for f in findings}


def test_operator_unknown_to_the_runtime_is_named(tmp_path: Path) -> None:
    node = helper.make_node("FancyOp", ["x"], ["y"], domain="com.example")
    model, data = _write(
        tmp_path, [node], [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    toolchain = OnnxRuntimeToolchain()
    findings = toolchain.check(
        _problem(model, data), LocalCpuTarget().describe(), OnnxRuntimeConfig()
    )
    error = next(f for f in findings if f.code == "runtime-cannot-load")
    assert "FancyOp" in error.message


def test_build_failure_names_the_step(tmp_path: Path) -> None:
    problem = resolve_problem(
        Problem.model_validate({"model": "zoo:digits-mlp", "dataset": "zoo:digits"})
    )
    toolchain = OnnxRuntimeToolchain()
    config = OnnxRuntimeConfig(execution_providers=["NoSuchExecutionProvider"])
    with pytest.raises(BuildError, match="step 'optimize' failed"):
        toolchain.build(problem, config, tmp_path)
