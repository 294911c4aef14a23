"""ONNX → Relax with TVM's Relax ONNX frontend, and what that frontend cannot take."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deploybench.toolchains.tvm.runtime import tvm_module

# Tensor types TVM's runtime exchanges with numpy (strings, complex and float8 are not).
SUPPORTED_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
)
# Handled by the importer itself rather than through its converter table.
_BUILTIN_OPS = frozenset({"Constant", "If"})
_FRONTEND = "tvm.relax.frontend.onnx"


def unsupported_operators(operators: Iterable[str]) -> list[str]:
    """Operators the Relax ONNX frontend has no converter for, sorted.

    Uses the frontend's converter table, which is what its own up-front check consults; when a
    TVM version hides that table, the trial import reports unsupported operators instead.
    """
    module = tvm_module(f"{_FRONTEND}.onnx_frontend")
    table = getattr(module, "_get_convert_map", None)
    if table is None:
        return []
    known = set(table()) | _BUILTIN_OPS
    return sorted({op for op in operators if op not in known})


def import_onnx(path: Path) -> Any:
    """The Relax ``IRModule`` of an ONNX model; weights become constants of the module."""
    onnx = importlib.import_module("onnx")
    frontend = tvm_module(_FRONTEND)
    model = onnx.load(str(path))
    return frontend.from_onnx(model, keep_params_in_input=False)


def bind_batch(module: Any, batch_size: int) -> tuple[Any, list[str]]:
    """Bind the symbolic first dimension of every input of ``main`` to ``batch_size``.

    Returns the module and the names of the variables that were bound.
    """
    relax = tvm_module("tvm.relax")
    tirx = tvm_module("tvm.tirx")
    binding: dict[Any, int] = {}
    for param in module["main"].params:
        info = getattr(param, "ty", None) or getattr(param, "struct_info", None)
        shape = getattr(info, "shape", None)
        values = getattr(shape, "values", None)
        if values and isinstance(values[0], tirx.Var):
            binding[values[0]] = batch_size
    if not binding:
        return module, []
    names = sorted({str(var.name) for var in binding})
    return relax.transform.BindSymbolicVars(binding)(module), names


def error_summary(exc: BaseException) -> str:
    """First meaningful line of a TVM error (they carry long C++ back-traces)."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(("File ", "Traceback", "at ", "0:", "1:")):
            return f"{type(exc).__name__}: {line}"
    return type(exc).__name__
