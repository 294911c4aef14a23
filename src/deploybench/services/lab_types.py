"""Values and errors of the lab service: job views, lease assignments, fencing errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deploybench.errors import DeploybenchError, UserError


class FenceError(DeploybenchError):
    """A call from an agent whose lease is no longer current (HTTP 409)."""


class NotFoundError(UserError):
    """No such job, or not visible to the caller (HTTP 404)."""


def utc(value: datetime | None) -> datetime | None:
    """Datetimes come back naive from SQLite; every stored time is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def job_json(view: JobView) -> dict[str, Any]:
    data = dict(view.__dict__)
    for key in ("submitted_at", "started_at", "ended_at"):
        if data[key] is not None:
            data[key] = data[key].isoformat()
    return data


@dataclass(frozen=True)
class JobView:
    """What the API shows of a job."""

    id: str
    campaign: str
    name: str
    owner: str
    state: str
    attempt: int
    target: str | None
    phase: str | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    failure_kind: str | None
    error: str | None
    run_id: str | None
    priority: int = 0
    max_runtime_s: float | None = None
    purpose: str = "run"


@dataclass(frozen=True)
class Assignment:
    """A lease handed to an agent."""

    job_id: str
    attempt: int
    epoch: int
    target: str
    definition: dict[str, Any]
    inputs: dict[str, str]
    lease_ttl: float
