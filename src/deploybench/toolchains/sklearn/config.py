"""Configuration of the scikit-learn toolchain: there is nothing to choose."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SklearnConfig(BaseModel):
    """No options: the estimator runs ``predict_proba`` exactly as scikit-learn does."""

    model_config = ConfigDict(frozen=True, extra="forbid")
