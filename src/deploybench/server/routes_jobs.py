"""Experiments, jobs, events and runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deploybench.server.deps import Services, principal, services
from deploybench.services.auth import Principal
from deploybench.services.lab import NotFoundError
from deploybench.services.lab_types import job_json
from deploybench.services.sweeps import Sweep, expand_sweep
from deploybench.store.queries import MetricCondition, RunFilter

router = APIRouter()


class Submission(BaseModel):
    """Experiment definitions, and/or a sweep the server expands, queued as one campaign."""

    model_config = ConfigDict(extra="forbid")

    experiments: list[dict[str, Any]] = Field(default_factory=list)
    sweep: Sweep | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Submission:
        if not self.experiments and self.sweep is None:
            raise ValueError("give at least one experiment, or a sweep")
        return self


@router.post("/experiments", status_code=201)
def submit(
    body: Submission, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Validate and queue experiments (all or none)."""
    definitions = list(body.experiments)
    if body.sweep is not None:
        definitions += expand_sweep(body.sweep)
    campaign, jobs = svc.lab.submit(caller, definitions, body.name)
    return {"campaign": campaign, "jobs": jobs}


@router.get("/jobs")
def list_jobs(
    campaign: str | None = None,
    state: str | None = None,
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> list[dict[str, Any]]:
    """Jobs visible to the caller, oldest first."""
    return [job_json(v) for v in svc.lab.list_jobs(caller, campaign, state)]


@router.get("/jobs/{job_id}")
def get_job(
    job_id: str, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, Any]:
    """One job."""
    return job_json(svc.lab.get_job(caller, job_id))


@router.get("/jobs/{job_id}/logs")
def job_logs(
    job_id: str, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> list[dict[str, Any]]:
    """Every timestamped action and agent log line of a job."""
    svc.lab.get_job(caller, job_id)  # 404 unless visible
    return svc.lab.events_since(caller, 0, job_id, limit=100_000)


def _control(svc: Services, action: str, caller: Principal, ident: str) -> dict[str, int]:
    handlers = {"abort": svc.lab.abort, "suspend": svc.lab.suspend, "resume": svc.lab.resume}
    affected = handlers[action](caller, ident)
    svc.wakeup.notify()
    return {"affected": affected}


@router.post("/jobs/{ident}/abort")
def abort(
    ident: str, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, int]:
    """Abort a job or campaign (running ones via their agent: SIGTERM, then SIGKILL)."""
    return _control(svc, "abort", caller, ident)


@router.post("/jobs/{ident}/suspend")
def suspend(
    ident: str, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, int]:
    """Hold a job or campaign; a running measurement is aborted and re-queued as held."""
    return _control(svc, "suspend", caller, ident)


@router.post("/jobs/{ident}/resume")
def resume(
    ident: str, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, int]:
    """Put held jobs back in the queue."""
    return _control(svc, "resume", caller, ident)


@router.get("/events", response_model=None)
async def events(
    request: Request,
    after: int = 0,
    job: str | None = None,
    once: bool = False,
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> Any:
    """Server-Sent Events of state changes and logs (``once=true``: one JSON list)."""
    if once:
        return await run_in_threadpool(svc.lab.events_since, caller, after, job)

    async def stream() -> AsyncIterator[str]:
        last = after
        idle = 0.0
        while not await request.is_disconnected():
            batch = await run_in_threadpool(svc.lab.events_since, caller, last, job)
            for event in batch:
                last = event["id"]
                yield f"id: {last}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n"
            if batch:
                idle = 0.0
                continue
            await svc.wakeup.wait(0.5)
            idle += 0.5
            if idle >= 15:  # a comment line keeps proxies from closing an idle stream
                idle = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(0)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.get("/runs")
def list_runs(
    experiment: str | None = None,
    toolchain: str | None = None,
    target: str | None = None,
    status: str | None = None,
    where: list[str] = Query(default=[]),
    limit: int = 100,
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> list[dict[str, Any]]:
    """Stored runs visible to the caller (users: their own), newest first."""
    found = svc.store.list_runs(
        RunFilter(
            experiment=experiment,
            toolchain=toolchain,
            target=target,
            status=status,
            owner=None if caller.sees_everything else caller.name,
            conditions=[MetricCondition.parse(text) for text in where],
            limit=limit,
        )
    )
    return [r.record.model_dump(mode="json") for r in found]


@router.get("/runs/{run_id}")
def get_run(
    run_id: str, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, Any]:
    """One stored run record."""
    stored = svc.store.get_run(run_id)
    if not caller.sees_everything and stored.owner != caller.name:
        raise NotFoundError(f"no run '{run_id}'")
    return stored.record.model_dump(mode="json")


@router.get("/health", include_in_schema=True)
def health() -> dict[str, str]:
    """Liveness, without authentication."""
    from deploybench import __version__

    return {"status": "ok", "version": __version__}
