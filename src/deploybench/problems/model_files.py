"""Model files: format detection, integrity and ONNX inspection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from deploybench.errors import ModelError
from deploybench.problems.tensors import Dim, TensorSpec

# ONNX protobufs cannot exceed 2 GiB without external data; bigger files are refused early
# (the limit can be raised for external-data models once they are supported).
DEFAULT_MAX_MODEL_BYTES = 2 * 1024**3
_ONNX_SUFFIXES = (".onnx",)
_TORCH_SUFFIXES = (".pt", ".pth", ".pt2")
_SKLEARN_SUFFIXES = (".skops",)
_FORMATS = ("onnx", "torch", "sklearn")


class ModelInfo(BaseModel):
    """What deploybench learned by reading a model file."""

    model_config = ConfigDict(frozen=True)

    format: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: int | None = None
    operators: list[str] = []


def max_model_bytes() -> int:
    """Size limit for model files (``DEPLOYBENCH_MAX_MODEL_BYTES`` overrides it)."""
    return int(os.environ.get("DEPLOYBENCH_MAX_MODEL_BYTES", DEFAULT_MAX_MODEL_BYTES))


def check_model_file(path: Path) -> None:
    """Refuse missing, empty or oversized files with a message that says how to fix it."""
    if not path.exists():
        raise ModelError(f"model file {path} does not exist; check problem.model.path")
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"model file {path} is empty; re-export the model")
    limit = max_model_bytes()
    if size > limit:
        raise ModelError(
            f"model file {path} is {size} bytes, over the {limit}-byte limit; "
            "raise DEPLOYBENCH_MAX_MODEL_BYTES if this is intended"
        )


def detect_format(path: Path, declared: str | None = None) -> str:
    """Return the model format: the declared one, else guessed from the suffix."""
    if declared is not None:
        if declared not in _FORMATS:
            raise ModelError(
                f"unknown model format '{declared}'; known formats: {', '.join(_FORMATS)}"
            )
        return declared
    suffix = path.suffix.lower()
    if suffix in _ONNX_SUFFIXES:
        return "onnx"
    if suffix in _TORCH_SUFFIXES:
        return "torch"
    if suffix in _SKLEARN_SUFFIXES:
        return "sklearn"
    raise ModelError(
        f"cannot tell the format of {path} from its suffix '{suffix}'; "
        "name it *.onnx (*.skops for scikit-learn) or set problem.model.format"
    )


def _dims(type_proto: Any) -> list[Dim]:
    shape = type_proto.tensor_type.shape
    dims: list[Dim] = []
    for dim in shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(str(dim.dim_param))
        else:
            dims.append(None)
    return dims


def inspect_onnx(path: Path) -> ModelInfo:
    """Load, check (onnx.checker, full shape inference) and describe an ONNX model."""
    import onnx
    from onnx import helper

    check_model_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, InferenceError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{path} is not a valid ONNX model ({type(exc).__name__}: {first}); "
            "re-export it, and check it with onnx.checker.check_model"
        ) from None
    initializers = {init.name for init in model.graph.initializer}
    inputs: list[TensorSpec] = []
    for value in model.graph.input:
        if value.name in initializers:
            continue  # old exporters list weights as inputs too
        if not value.type.HasField("tensor_type"):
            raise ModelError(
                f"{path}: input '{value.name}' is not a tensor; only tensors are supported"
            )
        elem = value.type.tensor_type.elem_type
        inputs.append(
            TensorSpec(
                name=value.name,
                dtype=str(helper.tensor_dtype_to_np_dtype(elem)),
                shape=_dims(value.type),
            )
        )
    outputs = [
        TensorSpec(
            name=value.name,
            dtype=str(helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)),
            shape=_dims(value.type),
        )
        for value in model.graph.output
    ]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    operators = sorted({node.op_type for node in model.graph.node})
    return ModelInfo(
        format="onnx", inputs=inputs, outputs=outputs, opset=opset, operators=operators
    )
