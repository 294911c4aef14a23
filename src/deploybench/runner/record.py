"""The run record: the immutable result of one execution of an experiment.

Its shape is a contract (issue #2): fields may be added, none may change meaning.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deploybench.toolchains.base import Finding, StepRecord


class RunErrorInfo(BaseModel):
    """Why a run failed."""

    model_config = ConfigDict(frozen=True)

    kind: str
    message: str


class ValidityInfo(BaseModel):
    """The validity verdict with reasons, recommendations and non-invalidating warnings."""

    model_config = ConfigDict(frozen=True)

    verdict: Literal["valid", "invalid"]
    reasons: list[str] = Field(default_factory=list)
    recommendations: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class RunRecord(BaseModel):
    """One run: resolved definition, status, metrics, environment, steps and artifacts."""

    model_config = ConfigDict(frozen=True)

    id: str
    experiment: dict[str, Any] = Field(description="The resolved experiment definition.")
    status: Literal["succeeded", "failed"]
    error: RunErrorInfo | None = None
    provenance: str = "measured"
    validity: ValidityInfo
    metrics: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict, description="name -> sha256")
    # Added fields (traceability):
    started_at: str
    finished_at: str
    deploybench_version: str
    inputs: dict[str, str] = Field(default_factory=dict, description="model/dataset -> sha256")
    target: dict[str, Any] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    repetitions: list[dict[str, Any]] = Field(default_factory=list)
    session: dict[str, Any] = Field(default_factory=dict)
    reference: dict[str, Any] = Field(default_factory=dict)
