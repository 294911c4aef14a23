"""deploybench: benchmark how machine-learning models behave once deployed on hardware.

Importing this package is cheap: no runtime (onnxruntime, torch, ...) is imported here.
"""

from deploybench.errors import DeploybenchError

__version__ = "0.1.0"

__all__ = ["DeploybenchError", "__version__"]
