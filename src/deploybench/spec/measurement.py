"""The measurement plan: warm-up, stop rule, repetitions, batch size and confidence.

Every numeric field left out takes its value from the profile (quick / default / rigorous).
:meth:`MeasurementPlan.resolved` returns the plan with every value filled in; that is the plan
recorded with a run, so a run always says exactly how it was measured.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from deploybench.spec.base import SpecModel

DEFAULT_PROBES = ("peak-rss", "cpu-time", "thermal")


class Profile(StrEnum):
    """Preset measurement plans, from a smoke test to publication-grade figures."""

    QUICK = "quick"
    DEFAULT = "default"
    RIGOROUS = "rigorous"


# Chosen from the reference tools' defaults (notes/measurement-methodology.md): TFLite's
# benchmark_model (50 runs and 1 s) for quick, optimum-benchmark's 10 s for rigorous, and
# pyperf's process-level replication.
PROFILE_DEFAULTS: dict[Profile, dict[str, Any]] = {
    Profile.QUICK: {
        "warmup_runs": 5,
        "warmup_seconds": 0.2,
        "min_iterations": 100,
        "min_duration": 1.0,
        "max_duration": 10.0,
        "repetitions": 3,
        "timeout": 120.0,
    },
    Profile.DEFAULT: {
        "warmup_runs": 10,
        "warmup_seconds": 1.0,
        "min_iterations": 500,
        "min_duration": 5.0,
        "max_duration": 60.0,
        "repetitions": 5,
        "timeout": 600.0,
    },
    Profile.RIGOROUS: {
        "warmup_runs": 50,
        "warmup_seconds": 5.0,
        "min_iterations": 2000,
        "min_duration": 20.0,
        "max_duration": 300.0,
        "repetitions": 10,
        "timeout": 1800.0,
    },
}


class MeasurementPlan(SpecModel):
    """How latency and functional metrics are measured."""

    profile: Profile = Field(default=Profile.DEFAULT, description="Preset for omitted fields.")
    warmup_runs: int | None = Field(default=None, ge=0, description="Minimum warm-up inferences.")
    warmup_seconds: float | None = Field(
        default=None, ge=0, description="Minimum warm-up time in seconds."
    )
    min_iterations: int | None = Field(
        default=None, ge=1, description="Stop rule: at least this many measured inferences..."
    )
    min_duration: float | None = Field(
        default=None, ge=0, description="...and at least this many seconds of measurement."
    )
    max_duration: float | None = Field(
        default=None,
        gt=0,
        description="Cap on the measured window (s); hitting it first "
        "means the stop rule was not met and the run is invalid.",
    )
    max_iterations: int | None = Field(
        default=None, ge=1, description="Cap on measured inferences (memory bound on samples)."
    )
    repetitions: int | None = Field(
        default=None, ge=1, le=1000, description="Measured processes, each fresh."
    )
    timeout: float | None = Field(
        default=None, gt=0, description="Wall-clock limit of one repetition (s); then killed."
    )
    batch_size: int = Field(default=1, ge=1, description="Samples per inference.")
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1.0, description="Confidence level of every interval."
    )
    seed: int = Field(default=0, ge=0, description="Seed of every random choice (bootstrap...).")
    accuracy_samples: int | None = Field(
        default=None, ge=1, description="Dataset samples used for accuracy (default: all)."
    )
    probes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROBES),
        description="Probe plugins attached to every measured process (see `deploybench "
        "plugins`); a sensor the target lacks is reported as unavailable.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> MeasurementPlan:
        plan = self.resolved() if self._has_gaps() else self
        assert plan.max_duration is not None and plan.min_duration is not None
        if plan.max_duration < plan.min_duration:
            raise ValueError(
                f"max_duration ({plan.max_duration}) is below min_duration "
                f"({plan.min_duration}); raise max_duration or lower min_duration"
            )
        if (
            plan.max_iterations is not None
            and plan.min_iterations is not None
            and plan.max_iterations < plan.min_iterations
        ):
            raise ValueError("max_iterations is below min_iterations; raise max_iterations")
        return self

    def _has_gaps(self) -> bool:
        return any(getattr(self, key) is None for key in PROFILE_DEFAULTS[self.profile])

    def resolved(self) -> MeasurementPlan:
        """Return this plan with every omitted field taken from its profile."""
        values = self.model_dump()
        for key, default in PROFILE_DEFAULTS[self.profile].items():
            if values[key] is None:
                values[key] = default
        if values["max_iterations"] is None:
            # Bound memory (8 bytes a sample) while leaving room far above the stop rule.
            values["max_iterations"] = max(1_000_000, values["min_iterations"])
        return MeasurementPlan.model_construct(**values)
