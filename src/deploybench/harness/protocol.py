"""Typed JSON exchanged between a target and the measurement worker process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TimingPlan(BaseModel):
    """The measured part of a repetition: warm-up then a window bounded by the stop rule."""

    model_config = ConfigDict(frozen=True)

    warmup_runs: int
    warmup_seconds: float
    warmup_max_seconds: float = Field(
        description="Warm-up continues past its minimum until steady, up to this long."
    )
    min_iterations: int
    min_duration: float
    max_duration: float
    max_iterations: int


class WorkerRequest(BaseModel):
    """What one worker process must do."""

    model_config = ConfigDict(frozen=True)

    deployable_dir: Path
    inputs_path: Path
    batch_size: int
    threads: int | None
    timing: TimingPlan | None = None
    functional_samples: int = 0
    capture_environment: bool = False
    result_path: Path
    latencies_path: Path
    outputs_path: Path
    runtime_latencies_path: Path | None = Field(
        default=None,
        description="Where to save the runtime-reported series (.npy of int64 ns) when the "
        "session reports one (Session.last_runtime_latency_ns); None: not recorded.",
    )


class WorkerError(BaseModel):
    """An error the worker caught; ``kind`` maps to :class:`FailureKind`."""

    model_config = ConfigDict(frozen=True)

    kind: str
    message: str
    traceback: str = ""


class WorkerResult(BaseModel):
    """What one worker process measured."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    error: WorkerError | None = None
    load_ns: int = 0
    first_inference_ns: int = 0
    warmup_runs: int = 0
    warmup_ns: int = 0
    steady_state: bool = False
    n: int = 0
    measured_ns: int = 0
    stop_rule_met: bool = False
    stopped_by: str = ""
    baseline_rss_bytes: int | None = None
    peak_rss_bytes: int | None = Field(
        default=None, description="VmHWM of the worker at the end: its own peak since exec."
    )
    runtime_latencies_path: Path | None = Field(
        default=None,
        description="The runtime-reported series the worker saved, one per timed call; None "
        "when the session reports no latency of its own.",
    )
    functional_samples: int = 0
    session_info: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] | None = None
