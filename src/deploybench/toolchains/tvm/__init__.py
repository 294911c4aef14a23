"""Apache TVM (Relax) toolchain (TVM itself is imported lazily)."""

from deploybench.toolchains.tvm.config import TvmConfig, TvmTargetConfig
from deploybench.toolchains.tvm.toolchain import TvmToolchain

__all__ = ["TvmConfig", "TvmTargetConfig", "TvmToolchain"]
