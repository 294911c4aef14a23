"""ONNX Runtime session used inside the measurement worker."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from deploybench.toolchains.base import Deployable, SessionOptions
from deploybench.toolchains.onnxruntime.providers import create_session

_LEVELS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


class OnnxRuntimeSession:
    """An ``InferenceSession`` configured from the deployable's session config."""

    needs_synchronize = False  # CPU execution is synchronous: run() returns finished outputs

    def __init__(self, deployable: Deployable, options: SessionOptions) -> None:
        import onnxruntime as ort

        config = deployable.session_config
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _LEVELS[config.get("graph_optimization", "disabled")]
        )
        intra = config.get("intra_op_threads")
        self._intra = intra if intra is not None else (options.threads or 0)
        so.intra_op_num_threads = self._intra
        so.inter_op_num_threads = config.get("inter_op_threads") or 0
        so.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if config.get("execution_mode") == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        self._session = create_session(
            str(deployable.entry_path),
            so,
            list(config.get("execution_providers", ["CPUExecutionProvider"])),
        )
        self._version = ort.__version__
        names = [spec.name for spec in deployable.outputs]
        # Bind the C-level run with its output names once: the timed call then adds no
        # Python frame of ours on top of InferenceSession.run.
        self.run: Callable[[Any], Sequence[np.ndarray]] = _bind_run(self._session.run, names)

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """ORT takes a plain name -> array mapping."""
        return dict(inputs)

    def synchronize(self) -> None:
        """Nothing to wait for on the CPU."""

    def info(self) -> dict[str, Any]:
        """Providers that actually run, threads, and the runtime version."""
        return {
            "runtime": "onnxruntime",
            "version": self._version,
            "providers": self._session.get_providers(),
            "intra_op_threads": self._intra or "runtime default",
        }

    def close(self) -> None:
        """Drop the session."""
        del self._session


def _bind_run(
    run: Callable[[list[str], Any], Sequence[np.ndarray]], names: list[str]
) -> Callable[[Any], Sequence[np.ndarray]]:
    import functools

    return functools.partial(run, names)


def open_session(deployable: Deployable, options: SessionOptions) -> OnnxRuntimeSession:
    """Session factory named in ONNX Runtime deployables."""
    return OnnxRuntimeSession(deployable, options)
