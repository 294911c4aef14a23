"""LiteRT (TFLite) toolchain: litert-torch conversion in its own environment, the LiteRT
interpreter in the main one (both imported lazily)."""

from deploybench.toolchains.litert.config import LiteRtConfig
from deploybench.toolchains.litert.toolchain import LiteRtToolchain

__all__ = ["LiteRtConfig", "LiteRtToolchain"]
