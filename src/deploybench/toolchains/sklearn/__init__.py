"""scikit-learn reference toolchain (scikit-learn and skops are imported lazily)."""

from deploybench.toolchains.sklearn.config import SklearnConfig
from deploybench.toolchains.sklearn.toolchain import SklearnToolchain

__all__ = ["SklearnConfig", "SklearnToolchain"]
