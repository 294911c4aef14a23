"""deploybench: benchmark how machine-learning models behave once deployed on hardware.

Importing this package is cheap: no runtime (onnxruntime, torch, ...) is imported here.
"""

from deploybench.errors import DeploybenchError

__version__ = "0.1.0"

__all__ = ["Client", "DeploybenchError", "__version__"]


def __getattr__(name: str) -> object:
    # `deploybench.Client` without importing httpx for every `import deploybench`.
    if name == "Client":
        from deploybench.client import Client

        return Client
    raise AttributeError(f"module 'deploybench' has no attribute {name!r}")
