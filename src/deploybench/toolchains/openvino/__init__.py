"""OpenVINO toolchain (openvino and nncf are imported lazily)."""

from deploybench.toolchains.openvino.config import OpenVinoConfig
from deploybench.toolchains.openvino.toolchain import OpenVinoToolchain

__all__ = ["OpenVinoConfig", "OpenVinoToolchain"]
