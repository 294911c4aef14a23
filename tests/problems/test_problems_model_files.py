"""Model files: existence and size checks, format detection, ONNX inspection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploybench.errors import ModelError, UserError
from deploybench.problems.model_files import (
    DEFAULT_MAX_MODEL_BYTES,
    check_model_file,
    detect_format,
    inspect_onnx,
    max_model_bytes,
)
from deploybench.problems.tensors import TensorSpec


def test_model_error_is_a_user_error() -> None:
    assert issubclass(ModelError, UserError)


def test_check_model_file_accepts_a_real_file(tiny_model: Path) -> None:
    check_model_file(tiny_model)


def test_check_model_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match="does not exist") as info:
        check_model_file(path)
    assert str(path) in str(info.value)
    assert "problem.model.path" in str(info.value)


def test_check_model_file_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.touch()
    with pytest.raises(ModelError, match="is empty; re-export"):
        check_model_file(path)


def test_check_model_file_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is not a file"):
        check_model_file(tmp_path)


def test_check_model_file_oversized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.onnx"
    path.write_bytes(b"x" * 101)
    monkeypatch.setenv("DEPLOYBENCH_MAX_MODEL_BYTES", "100")
    assert max_model_bytes() == 100
    with pytest.raises(ModelError) as info:
        check_model_file(path)
    message = str(info.value)
    assert "101 bytes, over the 100-byte limit" in message
    assert "DEPLOYBENCH_MAX_MODEL_BYTES" in message


def test_check_model_file_at_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "edge.onnx"
    path.write_bytes(b"x" * 100)
    monkeypatch.setenv("DEPLOYBENCH_MAX_MODEL_BYTES", "100")
    check_model_file(path)


def test_default_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOYBENCH_MAX_MODEL_BYTES", raising=False)
    assert max_model_bytes() == DEFAULT_MAX_MODEL_BYTES == 2 * 1024**3


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("m.onnx", "onnx"),
        ("M.ONNX", "onnx"),
        ("m.pt", "torch"),
        ("m.pth", "torch"),
        ("m.pt2", "torch"),
    ],
)
def test_detect_format_from_suffix(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt


def test_detect_format_declared_wins() -> None:
    assert detect_format(Path("model.bin"), "onnx") == "onnx"
    assert detect_format(Path("model.onnx"), "torch") == "torch"


def test_detect_format_unknown_declared() -> None:
    with pytest.raises(ModelError, match="unknown model format 'tflite'; known formats"):
        detect_format(Path("m.onnx"), "tflite")


@pytest.mark.parametrize("name", ["model.bin", "model", "model.onnx.txt"])
def test_detect_format_unknown_suffix(name: str) -> None:
    with pytest.raises(ModelError) as info:
        detect_format(Path(name))
    assert "cannot tell the format" in str(info.value)
    assert "problem.model.format" in str(info.value)


def test_inspect_tiny_model(tiny_model: Path) -> None:
    info = inspect_onnx(tiny_model)
    assert info.format == "onnx"
    # W is an initializer listed as a graph input too: it must not count as a model input
    assert info.inputs == [TensorSpec(name="input", dtype="float32", shape=["N", 4])]
    assert info.outputs == [TensorSpec(name="logits", dtype="float32", shape=["N", 3])]
    assert info.opset == 17
    assert info.operators == ["Add", "MatMul"]


def test_inspect_dtypes_and_unknown_dims(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 7])
    unknown = helper.make_tensor_value_info("mask", TensorProto.BOOL, [None, 7])
    out = helper.make_tensor_value_info("ids_out", TensorProto.INT64, ["batch", 7])
    mask_out = helper.make_tensor_value_info("mask_out", TensorProto.BOOL, [None, 7])
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["ids"], ["ids_out"]),
            helper.make_node("Not", ["mask"], ["mask_out"]),
        ],
        "g",
        [ids, unknown],
        [out, mask_out],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "ids.onnx"
    onnx.save(model, str(path))
    info = inspect_onnx(path)
    assert info.inputs == [
        TensorSpec(name="ids", dtype="int64", shape=["batch", 7]),
        TensorSpec(name="mask", dtype="bool", shape=[None, 7]),
    ]
    assert [o.dtype for o in info.outputs] == ["int64", "bool"]
    assert info.opset == 13
    assert info.operators == ["Identity", "Not"]
    assert info.inputs[1].render() == "mask: bool[?, 7]"


def _assert_invalid(path: Path) -> None:
    with pytest.raises(ModelError) as info:
        inspect_onnx(path)
    message = str(info.value)
    assert str(path) in message
    assert "is not a valid ONNX model" in message


def test_inspect_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "random.onnx"
    path.write_bytes(os.urandom(512))
    _assert_invalid(path)


def test_inspect_truncated_model(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.onnx"
    data = tiny_model.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_invalid(path)


def test_inspect_text_file_renamed(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("this is a text file, not a model\n" * 4)
    _assert_invalid(path)


def test_inspect_decodes_but_fails_checker(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["undefined"], ["y"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "broken.onnx"
    onnx.save(model, str(path))
    _assert_invalid(path)


def test_inspect_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        inspect_onnx(tmp_path / "absent.onnx")
