"""Configuration of the PyTorch toolchain."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["eager", "torchscript", "compile", "export-aoti"]
Quantization = Literal["none", "dynamic-int8"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs"]


class PyTorchConfig(BaseModel):
    """Every option of the PyTorch deployment pipeline and session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode = Field(
        default="eager",
        description="eager (the nn.Module as is), torchscript (torch.jit.script, else trace), "
        "compile (torch.compile with inductor, compiled in the worker before timing) or "
        "export-aoti (torch.export + AOTInductor, packaged as a .pt2).",
    )
    quantization: Quantization = Field(
        default="none",
        description="none, or dynamic-int8 (torch.ao dynamic quantization of nn.Linear: int8 "
        "weights, activations quantized at run time). Eager and torchscript modes only.",
    )
    compile_mode: CompileMode = Field(
        default="default", description="torch.compile mode (mode: compile only)."
    )
