"""scikit-learn session used inside the measurement worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deploybench.toolchains.base import Deployable, SessionOptions


class SklearnSession:
    """The deployed ``.skops`` estimator, loaded with the same allowlist as resolution;
    :meth:`run` returns ``predict_proba`` as float32."""

    needs_synchronize = False  # scikit-learn runs synchronously on the CPU

    def __init__(self, deployable: Deployable, options: SessionOptions) -> None:
        import sklearn
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        from deploybench.problems.sklearn_model import load_sklearn_model

        self._version = sklearn.__version__
        self._name = deployable.inputs[0].name
        self._threads = options.threads
        # Tree prediction is pure Cython (n_jobs=None); the limit keeps any BLAS/OpenMP pool
        # to the environment's thread count, and stays for the worker's lifetime.
        self._limits = threadpool_limits(limits=options.threads) if options.threads else None
        self._model: Any = load_sklearn_model(deployable.entry_path)
        # Forests fan trees out over joblib workers when n_jobs is set; one process only.
        if hasattr(self._model, "n_jobs"):
            self._model.n_jobs = None

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The input array as contiguous float32 (scikit-learn's tree dtype)."""
        return np.ascontiguousarray(inputs[self._name], dtype=np.float32)

    def run(self, feed: np.ndarray) -> Sequence[np.ndarray]:
        """``[predict_proba(feed)]`` as float32."""
        return [np.asarray(self._model.predict_proba(feed), dtype=np.float32)]

    def synchronize(self) -> None:
        """Nothing to wait for."""

    def info(self) -> dict[str, Any]:
        """scikit-learn version, estimator class and thread limit."""
        return {
            "runtime": "sklearn",
            "version": self._version,
            "estimator": type(self._model).__name__,
            "threads": self._threads,
        }

    def close(self) -> None:
        """Drop the estimator and release the thread limit."""
        del self._model
        if self._limits is not None:
            self._limits.restore_original_limits()
            self._limits = None


def open_session(deployable: Deployable, options: SessionOptions) -> SklearnSession:
    """Session factory named in scikit-learn deployables."""
    return SklearnSession(deployable, options)
