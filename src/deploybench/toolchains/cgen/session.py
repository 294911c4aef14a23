"""The generated C on the host, inside the measurement worker: a ctypes call per sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deploybench.toolchains.base import Deployable, SessionOptions
from deploybench.toolchains.cgen.codegen.host import HostModel


class CgenHostSession:
    """The host library of a cgen deployable; a batch is run sample by sample (the
    generated code is compiled for batch 1)."""

    needs_synchronize = False  # plain synchronous C

    def __init__(self, deployable: Deployable, options: SessionOptions) -> None:
        del options  # the generated code is single-threaded
        config = deployable.session_config
        self._config = config
        self._model = HostModel(
            deployable.root / config["host_library"],
            tuple(config["input_shape"]),
            tuple(config["output_shape"]),
            prefix=config["prefix"],
        )
        self._input = deployable.inputs[0].name

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The one input as contiguous float32 (the C takes a flat float array)."""
        return np.ascontiguousarray(inputs[self._input], dtype=np.float32)

    def run(self, feed: np.ndarray) -> Sequence[np.ndarray]:
        """One call of the generated ``run`` function per sample of the batch."""
        return [self._model.run(feed)]

    def synchronize(self) -> None:
        """Nothing to wait for."""

    def info(self) -> dict[str, Any]:
        """Precision, sizes and the compilation options of what ran."""
        return {
            "runtime": "cgen (host gcc build)",
            "precision": self._config["precision"],
            "weights_bytes": self._config["weights_bytes"],
            "arena_bytes": self._config["arena_bytes"],
            "compile": self._config.get("compile", {}),
            "threads": 1,
        }

    def close(self) -> None:
        """ctypes keeps the library mapped for the process' life; nothing to release."""


def open_session(deployable: Deployable, options: SessionOptions) -> CgenHostSession:
    """Session factory named in cgen deployables."""
    return CgenHostSession(deployable, options)
