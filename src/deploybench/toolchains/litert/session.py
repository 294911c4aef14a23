"""LiteRT session used inside the measurement worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deploybench.plugins.availability import distribution_version
from deploybench.toolchains.base import Deployable, SessionOptions
from deploybench.toolchains.litert.runtime import Feed, LiteRtRunner


class LiteRtSession:
    """A ``.tflite`` in the LiteRT interpreter, configured from the deployable.

    Opening it fails when XNNPACK was asked for and the interpreter delegated nothing to it,
    or delegated something when it was turned off: the run must measure what it says.
    """

    needs_synchronize = False  # Interpreter.invoke is synchronous

    def __init__(self, deployable: Deployable, options: SessionOptions) -> None:
        config = deployable.session_config
        threads = config.get("threads") or options.threads
        self._config = config
        self._runner = LiteRtRunner(
            deployable.entry_path,
            xnnpack=bool(config["xnnpack"]),
            threads=int(threads) if threads else None,
            batch=int(config["batch"]),
        )
        self._names = [spec.name for spec in deployable.inputs]
        self._declared = [np.dtype(spec.dtype) for spec in deployable.outputs]
        self._delegated = self._runner.delegated_nodes()
        if bool(config["xnnpack"]) != (self._delegated > 0):
            raise RuntimeError(
                f"xnnpack: {config['xnnpack']} but the interpreter delegated "
                f"{self._delegated} node(s) to XNNPACK; refusing to measure something else"
            )
        self._invocations = 1
        self._version = distribution_version("ai-edge-litert") or "unknown"

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Feed:
        """Arrays in signature order and model dtypes, split into invocations at the
        converted batch size (before timing)."""
        feed = self._runner.split([inputs[name] for name in self._names])
        self._invocations = len(feed)
        return feed

    def run(self, feed: Feed) -> Sequence[np.ndarray]:
        """One batch: one ``invoke`` per converted batch it holds; outputs concatenated in
        declared order, cast to the declared dtypes where LiteRT computed 32-bit ones."""
        outputs = self._runner.invoke(feed)
        return [
            o if o.dtype == dtype else o.astype(dtype)
            for o, dtype in zip(outputs, self._declared, strict=True)
        ]

    def synchronize(self) -> None:
        """Nothing to wait for: ``invoke`` returns finished outputs."""

    def info(self) -> dict[str, Any]:
        """Runtime version, precision, XNNPACK, threads, batch handling, tensor dtypes."""
        return {
            "runtime": "litert",
            "version": self._version,
            "precision": self._config.get("precision", "fp32"),
            "quantization": self._config.get("quantization", "none"),
            "xnnpack": bool(self._config["xnnpack"]),
            "xnnpack_delegated_nodes": self._delegated,
            "threads": self._runner.threads,
            "batch": self._config["batch"],
            "invocations_per_batch": self._invocations,
            "input_dtypes": [str(d) for d in self._runner.input_dtypes],
            "output_dtypes": [str(d) for d in self._runner.output_dtypes],
        }

    def close(self) -> None:
        """Release the interpreter."""
        self._runner.close()


def open_session(deployable: Deployable, options: SessionOptions) -> LiteRtSession:
    """Session factory named in LiteRT deployables."""
    return LiteRtSession(deployable, options)
