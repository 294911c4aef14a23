"""Fixtures of the CLI tests: a shared zoo home, a tiny user model and experiment writers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml


def write_tiny_model(path: Path, batch: str | int = "N") -> Path:
    """``logits = input @ W + b``: input float32[batch, 4] -> logits float32[batch, 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3])],
        initializer=[
            numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), "W"),
            numpy_helper.from_array(np.zeros(3, dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def zoo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DEPLOYBENCH_HOME for the whole session, so zoo problems are built once."""
    return tmp_path_factory.mktemp("deploybench-home")


@pytest.fixture(autouse=True)
def _env(zoo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(zoo_home))
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: no truncated names
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture()
def user_files(tmp_path: Path) -> Path:
    """A folder with ``tiny.onnx`` and a matching ``data.npz`` (5 samples, 3 classes)."""
    write_tiny_model(tmp_path / "tiny.onnx")
    np.savez(
        tmp_path / "data.npz",
        input=np.random.default_rng(0).random((5, 4), dtype=np.float32),
        labels=np.arange(5, dtype=np.int64) % 3,
    )
    return tmp_path


@pytest.fixture()
def tiny_model_writer() -> Callable[..., Path]:
    """:func:`write_tiny_model`, for tests that need a variant of the tiny model."""
    return write_tiny_model


@pytest.fixture()
def write_experiment(user_files: Path) -> Callable[..., Path]:
    """Write ``exp.yaml`` next to the user files: the tiny problem plus any overrides."""

    def write(name: str = "exp.yaml", **overrides: Any) -> Path:
        data: dict[str, Any] = {
            "name": "tiny",
            "problem": {"model": "./tiny.onnx", "dataset": "data.npz", "task": "classification"},
            "toolchain": {"name": "onnxruntime", "config": {"quantization": "none"}},
            "measurement": {"profile": "quick"},
        }
        data.update(overrides)
        path = user_files / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
