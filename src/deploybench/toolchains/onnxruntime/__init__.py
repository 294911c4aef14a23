"""ONNX Runtime toolchain (the runtime itself is imported lazily)."""

from deploybench.toolchains.onnxruntime.config import OnnxRuntimeConfig
from deploybench.toolchains.onnxruntime.toolchain import OnnxRuntimeToolchain

__all__ = ["OnnxRuntimeConfig", "OnnxRuntimeToolchain"]
