"""Regression metrics of predictions against ground truth."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)

from deploybench.metrics._model import ResultModel


class RegressionMetrics(ResultModel):
    """Error metrics and coefficient of determination; multi-output targets are averaged.

    ``r2`` and ``adjusted_r2`` are None when undefined, with the reason alongside.
    """

    n: int
    n_features: int
    mse: float
    mae: float
    rmse: float
    r2: float | None
    r2_unavailable: str | None = None
    adjusted_r2: float | None
    adjusted_r2_unavailable: str | None = None


def regression_metrics(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, n_features: int
) -> RegressionMetrics:
    """MSE, MAE, RMSE, R² and adjusted R² ``1 - (1 - R²)(n - 1)/(n - p - 1)``.

    ``(N, 1)`` arrays are flattened to ``(N,)`` (a model's single output column); ``(N, k)``
    targets are scored per output and averaged uniformly.

    Args:
        y_true: ground truth, first axis = samples.
        y_pred: predictions of the same shape.
        n_features: number of input features ``p`` of the model, for adjusted R².

    Raises:
        ValueError: on empty input, mismatched shapes (both are named) or negative
            ``n_features``.
    """
    t = _squeeze_column(np.asarray(y_true, dtype=np.float64))
    p = _squeeze_column(np.asarray(y_pred, dtype=np.float64))
    if t.shape != p.shape:
        raise ValueError(f"y_true shape {t.shape} does not match y_pred shape {p.shape}")
    if t.ndim not in (1, 2):
        raise ValueError(f"expected (N,) or (N, outputs) arrays, got shape {t.shape}")
    if t.shape[0] == 0:
        raise ValueError("regression metrics need at least one sample")
    if n_features < 0:
        raise ValueError(f"n_features must be >= 0, got {n_features}")
    n = int(t.shape[0])
    r2: float | None = None
    r2_unavailable: str | None = None
    if n < 2:
        r2_unavailable = "R² needs at least 2 samples"
    else:
        # force_finite=False: sklearn would otherwise report 0.0 or 1.0 for a constant target,
        # a number that was not measured.
        with np.errstate(divide="ignore", invalid="ignore"):
            value = float(r2_score(t, p, force_finite=False))
        if math.isfinite(value):
            r2 = value
        else:
            r2_unavailable = "y_true is constant: R² is undefined (zero total variance)"
    adjusted: float | None = None
    adjusted_unavailable: str | None = None
    dof = n - n_features - 1
    if r2 is None:
        adjusted_unavailable = f"needs R², which is unavailable: {r2_unavailable}"
    elif dof <= 0:
        adjusted_unavailable = (
            f"n - n_features - 1 = {n} - {n_features} - 1 = {dof} <= 0: "
            "adjusted R² needs more samples than features + 1"
        )
    else:
        adjusted = 1.0 - (1.0 - r2) * (n - 1) / dof
    return RegressionMetrics(
        n=n,
        n_features=n_features,
        mse=float(mean_squared_error(t, p)),
        mae=float(mean_absolute_error(t, p)),
        rmse=float(root_mean_squared_error(t, p)),
        r2=r2,
        r2_unavailable=r2_unavailable,
        adjusted_r2=adjusted,
        adjusted_r2_unavailable=adjusted_unavailable,
    )


def _squeeze_column(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``(N, 1)`` -> ``(N,)``; any other shape unchanged."""
    return x[:, 0] if x.ndim == 2 and x.shape[1] == 1 else x
