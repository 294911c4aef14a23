"""The lowered program: typed activation buffers, constant arrays and kernel calls in order."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

FLOAT = "float"
INT8 = "int8_t"

_C_TYPES: dict[str, tuple[str, int]] = {
    "float": ("float", 4),
    "int8_t": ("int8_t", 1),
    "int32_t": ("int32_t", 4),
    "int": ("int", 4),
}
_NUMPY_TYPES: dict[str, type[np.generic]] = {
    "float": np.float32,
    "int8_t": np.int8,
    "int32_t": np.int32,
    "int": np.int32,
}


@dataclass(frozen=True)
class Buffer:
    """An activation tensor: lives in the arena unless it is the (external) model input."""

    name: str
    shape: tuple[int, ...]
    ctype: str

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies."""
        return self.size * _C_TYPES[self.ctype][1]


@dataclass(frozen=True)
class Step:
    """One kernel call. ``call`` is a C statement whose ``{in0}``, ``{in1}``, ``{out}``
    placeholders become buffer pointers once the arena is planned. An alias step (Reshape,
    Flatten, ...) emits no code: its output shares its first input's memory. An ``in_place``
    step may write its output over its first input (elementwise, same size)."""

    op_type: str
    inputs: tuple[str, ...]
    output: str
    kernel: str = ""
    call: str = ""
    alias: bool = False
    in_place: bool = False


@dataclass(frozen=True)
class ConstArray:
    """A ``static const`` parameter array (it lands in flash/.rodata)."""

    ident: str
    ctype: str
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes of the array in the image."""
        return int(self.values.size) * _C_TYPES[self.ctype][1]


@dataclass
class Program:
    """Everything the C writer needs, built up by the lowering passes."""

    input_name: str
    output_name: str
    buffers: dict[str, Buffer] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    consts: list[ConstArray] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)

    def buffer(self, name: str, shape: tuple[int, ...], ctype: str) -> str:
        """Declare an activation buffer; returns its name for chaining."""
        self.buffers[name] = Buffer(name, tuple(shape), ctype)
        return name

    def const(self, hint: str, values: np.ndarray, ctype: str) -> str:
        """Register a constant array and return its C identifier."""
        base = re.sub(r"[^0-9A-Za-z_]", "_", hint).strip("_")[:40] or "c"
        ident = f"k{len(self.consts)}_{base}"
        array = np.ascontiguousarray(np.asarray(values).astype(_NUMPY_TYPES[ctype]).reshape(-1))
        self.consts.append(ConstArray(ident, ctype, array))
        return ident

    @property
    def weights_bytes(self) -> int:
        """Bytes of all constant arrays."""
        return sum(array.nbytes for array in self.consts)


def c_float(value: float) -> str:
    """A C float literal that round-trips a float32 value."""
    value = float(np.float32(value))
    if math.isinf(value):
        return "3.402823466e+38f" if value > 0 else "-3.402823466e+38f"
    text = f"{value:.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text + "f"
