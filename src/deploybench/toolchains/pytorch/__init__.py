"""PyTorch toolchain (torch is imported lazily)."""

from deploybench.toolchains.pytorch.config import PyTorchConfig
from deploybench.toolchains.pytorch.toolchain import PyTorchToolchain

__all__ = ["PyTorchConfig", "PyTorchToolchain"]
