"""Dispatch policy: a pure function of a snapshot, so it can be tested with a fake clock and
replaced (fair share, reservations and health come in the scheduling issue)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class QueuedJob:
    """What the policy needs to know of a queued job."""

    id: str
    wanted_target: str
    submitted_at: datetime
    not_before: datetime | None = None


def compatible(job: QueuedJob, target_name: str, target_plugin: str) -> bool:
    """A job names a target exactly (``agent/local``) or by plugin (``local``: any of them)."""
    return job.wanted_target in (target_name, target_plugin)


def pick_job(
    target_name: str, target_plugin: str, queued: Sequence[QueuedJob], now: datetime
) -> QueuedJob | None:
    """FIFO: the oldest compatible job that is due (retries wait out their back-off)."""
    due = [
        job
        for job in queued
        if compatible(job, target_name, target_plugin)
        and (job.not_before is None or job.not_before <= now)
    ]
    return min(due, key=lambda job: (job.submitted_at, job.id), default=None)
