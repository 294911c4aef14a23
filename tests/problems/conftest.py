"""Fixtures of the problems tests: a tiny hand-built ONNX model and a shared zoo home."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_tiny_model(path: Path, batch: str | int = "N", features: int = 4) -> Path:
    """``logits = input @ W + b``: input float32[batch, features] -> logits float32[batch, 3].

    W and b are initializers, and W is also listed as a graph input (old-exporter style).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((features, 3), dtype=np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["logits"]),
        ],
        "tiny",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, features]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, [features, 3]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid tiny ONNX model (see :func:`write_tiny_model`)."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="session")
def zoo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DEPLOYBENCH_HOME for the whole session, so zoo problems are built once."""
    return tmp_path_factory.mktemp("deploybench-home")


@pytest.fixture(autouse=True)
def _home(zoo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(zoo_home))
