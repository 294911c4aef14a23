"""The target contract: describe the hardware, execute a deployable, return raw measurements.

A host target runs the Python measurement worker in fresh processes; a simulator target boots
firmware; an analytical target predicts without executing. What each can do is declared in
:class:`TargetInfo` (``executes``, ``capabilities``, ``provenance``), not discovered through
``NotImplementedError``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from deploybench.plugins.availability import Availability
from deploybench.probes.base import ProbeReading
from deploybench.spec.environment import EnvironmentSpec
from deploybench.spec.measurement import MeasurementPlan
from deploybench.toolchains.base import Deployable, StepRecord


class Provenance(StrEnum):
    """Where a number comes from (see ARCHITECTURE.md §1)."""

    MEASURED = "measured"
    SIMULATED = "simulated"
    ESTIMATED = "estimated"
    PREDICTED = "predicted"


class MemoryRegion(BaseModel):
    """A memory of the target with its capacity (RAM, flash, DSPR, LMU, ...)."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: str = Field(description="ram, flash, cache, ...")
    size_bytes: int


class TargetInfo(BaseModel):
    """What a target is and what it can do."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: str = Field(description="host, simulator, analytical or remote.")
    description: str
    cpu_model: str | None = None
    cores: int | None = None
    isa_features: list[str] = Field(default_factory=list)
    memories: list[MemoryRegion] = Field(default_factory=list)
    provenance: Provenance = Provenance.MEASURED
    executes: list[str] = Field(description="Deployable kinds it can run, e.g. python-session.")
    capabilities: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class FailureKind(StrEnum):
    """Why a repetition failed; infrastructure kinds may be retried by the scheduler later."""

    CRASH = "crash"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    RUNTIME_ERROR = "runtime_error"
    INFRASTRUCTURE = "infrastructure"


class RunFailure(BaseModel):
    """The failure that ended a run, with the log that shows it."""

    model_config = ConfigDict(frozen=True)

    kind: FailureKind
    message: str
    phase: str = Field(description="functional, repetition-N, reference ...")
    log_path: Path | None = None


class RepetitionRecord(BaseModel):
    """Raw measurements of one fresh process (or one fresh boot)."""

    model_config = ConfigDict(frozen=True)

    index: int
    latencies_path: Path = Field(description=".npy of int64 nanoseconds, one per inference.")
    runtime_latencies_path: Path | None = None
    load_ns: int
    first_inference_ns: int
    warmup_runs: int
    warmup_ns: int
    steady_state: bool
    measured_ns: int
    stop_rule_met: bool
    stopped_by: str
    peak_rss_bytes: int | None
    baseline_rss_bytes: int | None
    wall_seconds: float
    log_path: Path
    session_info: dict[str, Any] = Field(default_factory=dict)
    probes: list[ProbeReading] = Field(default_factory=list)


class FunctionalRecord(BaseModel):
    """Outputs of the functional pass (accuracy and semantic preservation)."""

    model_config = ConfigDict(frozen=True)

    outputs_path: Path = Field(description=".npz with one array per model output.")
    n_samples: int
    log_path: Path


class RawRun(BaseModel):
    """What a target returns: raw data only; statistics are computed by the runner."""

    model_config = ConfigDict(frozen=True)

    provenance: Provenance
    repetitions: list[RepetitionRecord]
    functional: FunctionalRecord | None
    environment: dict[str, Any]
    failure: RunFailure | None = None
    memory_limit_mechanism: str | None = None
    steps: list[StepRecord] = Field(
        default_factory=list,
        description="Build steps the target ran itself (cross-compilation, linking), recorded "
        "after the toolchain's.",
    )
    logs: list[Path] = Field(
        default_factory=list,
        description="Logs of passes that are neither functional nor timed repetitions (the "
        "baseline and counted boots of a simulator), kept in the run's log.",
    )
    target_metrics: dict[str, Any] = Field(
        default_factory=dict,
        description="Metrics only this kind of target yields (flash, RAM, stack, instructions, "
        "simulated cycles), each with its unit and provenance, or the reason it is unavailable.",
    )


ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)``; phase is 'functional' or 'repetitions'."""


class ExecutionRequest(BaseModel):
    """Everything a target needs to execute one deployable."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    deployable: Deployable
    inputs_path: Path = Field(description=".npz with one array per model input.")
    environment: EnvironmentSpec
    plan: MeasurementPlan = Field(description="Resolved plan (no omitted fields).")
    functional_samples: int = Field(ge=0, description="Samples for the functional pass; 0: none.")
    timing: bool = Field(default=True, description="False: functional pass only (reference).")
    workdir: Path


class Target(abc.ABC):
    """Base class of execution targets, registered in the ``deploybench.targets`` group."""

    name: ClassVar[str]
    summary: ClassVar[str]
    # The pydantic model of ``target.config`` (a board, ...); None: the target takes no options.
    config_model: ClassVar[type[BaseModel] | None] = None

    @classmethod
    @abc.abstractmethod
    def availability(cls) -> Availability:
        """Whether this target can be used from here."""

    @classmethod
    def configured(cls, config: BaseModel | None) -> Target:
        """An instance for a validated ``target.config`` (None when the target takes none).

        Targets with a :attr:`config_model` override this to keep their configuration."""
        return cls()

    @classmethod
    def tool_version(cls) -> str | None:
        """Version of the tool behind the target (QEMU...), None for plain hosts."""
        return None

    @abc.abstractmethod
    def describe(self) -> TargetInfo:
        """Cores, ISA features, memories, provenance and what it executes."""

    @abc.abstractmethod
    def execute(
        self, request: ExecutionRequest, progress: ProgressCallback | None = None
    ) -> RawRun:
        """Run the functional pass and the measured repetitions; never raises for a failed
        repetition (that is reported in :attr:`RawRun.failure`)."""
