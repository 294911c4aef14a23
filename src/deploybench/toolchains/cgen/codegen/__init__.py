"""ONNX -> portable C99 code generator (fp32 and QDQ int8), with no dynamic allocation.

``check_model`` lists what prevents generation, ``generate_c`` writes ``model.c``/``model.h``,
and ``host`` compiles them into a shared library that Python can run through ctypes."""

from __future__ import annotations

from deploybench.toolchains.cgen.codegen.generate import GeneratedModel, generate_c
from deploybench.toolchains.cgen.codegen.issues import CodegenError, OperatorIssue
from deploybench.toolchains.cgen.codegen.operators import SUPPORTED_OPERATORS
from deploybench.toolchains.cgen.codegen.support import check_model

__all__ = [
    "SUPPORTED_OPERATORS",
    "CodegenError",
    "GeneratedModel",
    "OperatorIssue",
    "check_model",
    "generate_c",
]
