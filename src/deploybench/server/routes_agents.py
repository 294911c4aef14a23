"""The agent protocol: register, long-poll for a lease, heartbeat, log, finish."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from deploybench.runner.record import RunRecord
from deploybench.server.deps import Services, require, services
from deploybench.services.auth import Principal, Role
from deploybench.services.lab_types import job_json

router = APIRouter()
_AGENT = require(Role.AGENT, Role.ADMIN)
MAX_WAIT = 30.0


class Registration(BaseModel):
    """An agent and the targets it drives (each a TargetInfo dump)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")
    version: str
    targets: list[dict[str, Any]]


class LeaseRequest(BaseModel):
    """Which of the agent's targets are free, and how long to wait for work."""

    model_config = ConfigDict(extra="forbid")

    free: list[str]
    wait: float = Field(default=20.0, ge=0, le=MAX_WAIT)


class Heartbeat(BaseModel):
    """Lease renewal, with the phase the run is in."""

    model_config = ConfigDict(extra="forbid")

    epoch: int
    phase: str | None = None


class LogLines(BaseModel):
    """Log lines of the running attempt."""

    model_config = ConfigDict(extra="forbid")

    epoch: int
    lines: list[str]


class Finish(BaseModel):
    """End of an attempt: the run record, or why there is none."""

    model_config = ConfigDict(extra="forbid")

    epoch: int
    record: RunRecord | None = None
    failure_kind: str | None = None
    message: str | None = None


@router.post("/agents/register")
def register(
    body: Registration, caller: Principal = Depends(_AGENT), svc: Services = Depends(services)
) -> dict[str, list[str]]:
    """Record the agent and its targets."""
    names = svc.lab.register_agent(caller, body.name, body.version, body.targets)
    svc.wakeup.notify()
    return {"targets": names}


@router.post("/agents/{name}/lease", response_model=None)
async def lease(
    name: str,
    body: LeaseRequest,
    caller: Principal = Depends(_AGENT),
    svc: Services = Depends(services),
) -> Any:
    """Long-poll: an assignment as soon as one of the free targets has work, else 204."""
    deadline = time.monotonic() + body.wait
    while True:
        assignment = await run_in_threadpool(svc.lab.lease, caller, name, body.free)
        if assignment is not None:
            return asdict(assignment)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Response(status_code=204)
        # Retries become due without any notification: look again at least every second.
        await svc.wakeup.wait(min(remaining, 1.0))


@router.post("/jobs/{job_id}/heartbeat")
def heartbeat(
    job_id: str,
    body: Heartbeat,
    caller: Principal = Depends(_AGENT),
    svc: Services = Depends(services),
) -> dict[str, str | None]:
    """Renew the lease; the answer says whether to abort or suspend."""
    return {"cancel": svc.lab.heartbeat(job_id, body.epoch, body.phase, caller)}


@router.post("/jobs/{job_id}/log", status_code=204)
def log(
    job_id: str,
    body: LogLines,
    caller: Principal = Depends(_AGENT),
    svc: Services = Depends(services),
) -> Response:
    """Append log lines to the job."""
    svc.lab.log(job_id, body.epoch, body.lines, caller)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/finish")
def finish(
    job_id: str,
    body: Finish,
    caller: Principal = Depends(_AGENT),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Close the attempt (idempotent for the same epoch)."""
    view = svc.lab.finish(job_id, body.epoch, body.record, body.failure_kind, body.message, caller)
    svc.wakeup.notify()
    return job_json(view)
