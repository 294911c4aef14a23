"""Semantic preservation settings: how two outputs are judged identical."""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import Field, model_validator

from deploybench.spec.base import SpecModel


class Distance(StrEnum):
    """Distance between a deployed output and the reference output of the same sample.

    - ``max_abs``: largest absolute element difference.
    - ``rel``: largest absolute difference divided by the reference's largest magnitude.
    - ``cosine``: 1 - cosine similarity (0 = same direction, 2 = opposite).
    - ``topk``: 1 - |top-k(deployed) ∩ top-k(reference)| / k.
    - ``label``: 0 when the arg-max labels agree, else 1.
    """

    MAX_ABS = "max_abs"
    REL = "rel"
    COSINE = "cosine"
    TOPK = "topk"
    LABEL = "label"


# Thresholds at or above the upper bound would call every output identical.
_UPPER_BOUND = {Distance.COSINE: 2.0, Distance.TOPK: 1.0, Distance.LABEL: 1.0}


class SemanticPreservationSpec(SpecModel):
    """Two outputs are identical when ``distance(deployed, reference) <= threshold``."""

    distance: Distance = Field(description="How outputs are compared.")
    threshold: float = Field(description="Largest distance still counted as identical.")
    k: int = Field(default=5, ge=1, description="k of the topk distance.")
    output: str | int = Field(
        default=0, description="Which model output is compared: its name or index."
    )

    @model_validator(mode="after")
    def _threshold_in_range(self) -> SemanticPreservationSpec:
        if not math.isfinite(self.threshold) or self.threshold < 0:
            raise ValueError(f"threshold must be a finite number >= 0, got {self.threshold}")
        upper = _UPPER_BOUND.get(self.distance)
        if upper is not None and self.threshold >= upper:
            raise ValueError(
                f"threshold {self.threshold} is out of range for distance "
                f"'{self.distance.value}': it must be >= 0 and < {upper} "
                "(at the bound every output would count as identical)"
            )
        return self
