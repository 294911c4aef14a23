"""Operating the farm: the queue view, pausing the scheduler, broadcasts, target health and
maintenance, reservations, usage reports, and operator job controls (priority, start now).

Role checks live in the services (403 with their message); these routes only validate bodies
and wake the dispatcher after a change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from deploybench.server.deps import Services, principal, services
from deploybench.services.auth import Principal
from deploybench.services.farm import FarmControl

router = APIRouter()


def _aware(value: datetime | None) -> datetime | None:
    """A datetime without a time zone is taken as UTC (the lab's clock)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# -- queue ----------------------------------------------------------------------------------


@router.get("/queue")
def queue(caller: Principal = Depends(principal), svc: Services = Depends(services)) -> Any:
    """The farm now: pause, broadcasts, targets, running work and the queue with each run's
    position, why it waits and its estimated start (users see others' runs as a count)."""
    return svc.lab.queue_view(caller)


# -- scheduler ------------------------------------------------------------------------------


class Pause(BaseModel):
    """Why the scheduler is paused (shown to everyone)."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(default="", max_length=1000)


def _scheduler_state(svc: Services) -> dict[str, Any]:
    with Session(svc.store.engine) as session:
        paused = FarmControl.paused(session)
    return {"paused": paused, "settings": svc.lab.scheduling.model_dump(mode="json")}


@router.get("/scheduler")
def scheduler(
    caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Whether the scheduler is paused (``{by, at, message}`` or null) and its settings."""
    return _scheduler_state(svc)


@router.post("/scheduler/pause")
def pause(
    body: Pause | None = None,
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Operators: nothing new starts (running work finishes) until resumed."""
    value = svc.lab.farm.set_paused(caller, True, body.message if body else "")
    svc.wakeup.notify()
    return value


@router.post("/scheduler/resume")
def resume(
    caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Operators: start dispatching again."""
    value = svc.lab.farm.set_paused(caller, False, "")
    svc.wakeup.notify()
    return value


# -- broadcasts -----------------------------------------------------------------------------


class NewBroadcast(BaseModel):
    """A message to every user."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=2000)
    hours: float | None = Field(
        default=24.0, gt=0, description="How long it is shown; null: until further notice."
    )


@router.get("/broadcasts")
def broadcasts(
    caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> list[dict[str, Any]]:
    """Messages from the operators that have not expired, newest first."""
    return svc.lab.farm.broadcasts()


@router.post("/broadcasts", status_code=201)
def broadcast(
    body: NewBroadcast, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Operators: tell every user something (mailed too when mail is set up)."""
    return svc.lab.farm.broadcast(caller, body.message, body.hours)


# -- targets --------------------------------------------------------------------------------


class TargetChange(BaseModel):
    """What to change on a target; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    maintenance: bool | None = Field(
        default=None, description="true: start maintenance; false: end it (a check follows)."
    )
    until: datetime | None = Field(
        default=None, description="End of the maintenance (ISO 8601; no time zone: UTC)."
    )
    message: str | None = Field(default=None, max_length=1000)
    retired: bool | None = None
    tags: list[str] | None = Field(default=None, description="Replace the tags.")

    @model_validator(mode="after")
    def _until_needs_maintenance(self) -> TargetChange:
        if self.until is not None and self.maintenance is not True:
            raise ValueError("until is the end of a maintenance: send it with maintenance=true")
        if self.tags is not None and any(not t.strip() or "," in t for t in self.tags):
            raise ValueError("tags must be non-empty and contain no commas")
        return self


@router.patch("/targets/{name:path}")
def update_target(
    name: str,
    body: TargetChange,
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Operators: enable/disable, start/end maintenance, retire/un-retire, set tags."""
    view = svc.lab.farm.update_target(
        caller,
        name,
        enabled=body.enabled,
        maintenance=body.maintenance,
        until=_aware(body.until),
        message=body.message,
        retired=body.retired,
        tags=None if body.tags is None else [t.strip() for t in body.tags],
    )
    svc.wakeup.notify()
    return view


@router.post("/targets/{name:path}/check")
def check_target(
    name: str, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Operators: a health check must pass before the target serves again."""
    view = svc.lab.farm.request_check(caller, name)
    svc.wakeup.notify()
    return view


# -- reservations ---------------------------------------------------------------------------


class NewReservation(BaseModel):
    """A window on one target, or on each target whose tags include ``tags``."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = None
    tags: list[str] | None = None
    starts_at: datetime | None = Field(
        default=None, description="ISO 8601 (no time zone: UTC); left out: now."
    )
    ends_at: datetime | None = Field(default=None, description="ISO 8601; or give hours.")
    hours: float | None = Field(default=None, gt=0, description="Length, instead of ends_at.")
    lend_idle: bool | None = None
    note: str = Field(default="", max_length=256)

    @model_validator(mode="after")
    def _one_end(self) -> NewReservation:
        if (self.ends_at is None) == (self.hours is None):
            raise ValueError("give either ends_at or hours")
        return self


@router.get("/reservations")
def reservations(
    include_all: bool = Query(default=False, alias="all", description="Past and canceled too."),
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> list[dict[str, Any]]:
    """The calendar (everyone sees it), soonest first."""
    return svc.lab.reservations.list(include_past=include_all)


@router.post("/reservations", status_code=201)
def reserve(
    body: NewReservation, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> list[dict[str, Any]]:
    """Reserve a target, or each target matching the tags (all or none)."""
    starts_at = _aware(body.starts_at) or datetime.now(UTC)
    ends_at = _aware(body.ends_at) or starts_at + timedelta(hours=body.hours or 0)
    made = svc.lab.reservations.create(
        caller,
        starts_at,
        ends_at,
        target=body.target,
        tags=body.tags,
        lend_idle=body.lend_idle,
        note=body.note,
    )
    svc.wakeup.notify()
    return made


@router.delete("/reservations/{reservation_id}")
def cancel_reservation(
    reservation_id: int, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Cancel a reservation (its holder, or an operator)."""
    canceled = svc.lab.reservations.cancel(caller, reservation_id)
    svc.wakeup.notify()
    return canceled


# -- usage ----------------------------------------------------------------------------------


@router.get("/usage")
def usage(
    days: int = Query(default=7, ge=1, le=366),
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Target time per user per day, per target, per experiment and per phase, and each
    user's fair-share state (users see their own, operators everyone's)."""
    return svc.lab.accounting.report(caller, days=days)


# -- operator job controls ------------------------------------------------------------------


class NewPriority(BaseModel):
    """A queued job's priority (higher starts first; 0 is the default)."""

    model_config = ConfigDict(extra="forbid")

    priority: int = Field(ge=-1_000_000, le=1_000_000)


@router.post("/jobs/{ident}/priority")
def set_priority(
    ident: str,
    body: NewPriority,
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> dict[str, int]:
    """Operators: set the priority of a queued or held job or campaign."""
    affected = svc.lab.set_priority(caller, ident, body.priority)
    svc.wakeup.notify()
    return {"affected": affected}


@router.post("/jobs/{ident}/start")
def start_now(
    ident: str, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, int]:
    """Operators: put a job or campaign ahead of the queue (held ones are resumed)."""
    affected = svc.lab.start_now(caller, ident)
    svc.wakeup.notify()
    return {"affected": affected}
