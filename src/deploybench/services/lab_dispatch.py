"""From the database to the pure policy and back: placement matching, the snapshot a
dispatch pass plans over, and target health as the scheduler sees it.

A pass reads only what the policy needs: every target, the active jobs, the reservations
still to come, the usage ledger of the window (summed in SQL), and the *heads* of the queue:
for each (user, priority, placement, max_runtime_s) the first K due jobs, K being the number
of free targets. Runs of one group are interchangeable except for their submission time, so
the policy cannot pick a run behind the K-th of its group, and the pass costs a few indexed
queries whatever the length of the queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from deploybench.scheduler.fairshare import (
    Reservation,
    RunView,
    Snapshot,
    TargetView,
    UsageEntry,
    target_eligible,
)
from deploybench.scheduler.settings import SchedulingSettings
from deploybench.services.lab_types import utc
from deploybench.store.lab_models import (
    ACTIVE_STATES,
    AgentRow,
    JobRow,
    ReservationRow,
    TargetRow,
    UsageRow,
    UserRow,
)

HEALTH_PURPOSE = "health"


def canonical_placement(
    plugin: str,
    target: str | None = None,
    tags: Iterable[str] = (),
    attributes: Mapping[str, Any] | None = None,
    health_check: bool = False,
) -> str:
    """The placement key of a job: equal keys mean interchangeable jobs for the policy."""
    data: dict[str, Any] = {"plugin": plugin}
    if target:
        data["target"] = target
    if tags:
        data["tags"] = sorted(set(tags))
    if attributes:
        data["attributes"] = dict(sorted(attributes.items()))
    if health_check:
        data["health_check"] = True
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _lookup(info: Mapping[str, Any], path: str) -> Any:
    value: Any = info
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def attribute_matches(info: Mapping[str, Any], path: str, wanted: Any) -> bool:
    """A scalar field equals ``wanted``; a list field contains it."""
    value = _lookup(info, path)
    if isinstance(value, list):
        return wanted in value
    if isinstance(wanted, bool) or isinstance(value, bool):
        return value is wanted
    if isinstance(wanted, int | float) and isinstance(value, int | float):
        return float(value) == float(wanted)
    return value is not None and str(value) == str(wanted)


def placement_matches(placement: Mapping[str, Any], target: TargetRow) -> bool:
    """Whether ``target`` is one of the targets ``placement`` allows (ignoring its state)."""
    if target.plugin != placement.get("plugin", target.plugin):
        return False
    if placement.get("target") and placement["target"] != target.name:
        return False
    if not set(placement.get("tags", ())) <= set(target.tags):
        return False
    return all(
        attribute_matches(target.info, path, value)
        for path, value in placement.get("attributes", {}).items()
    )


def effective_health(target: TargetRow, agent: AgentRow, now: datetime) -> str:
    """What the scheduler sees: retired / maintenance / offline gate before the stored health."""
    if target.health in ("retired", "maintenance"):
        return target.health
    if agent.state != "online":
        return "offline"
    return target.health


def agent_online(agent: AgentRow, now: datetime, settings: SchedulingSettings) -> bool:
    last = utc(agent.last_seen_at)
    return last is not None and now - last <= timedelta(seconds=settings.offline_after_s)


class QueuedJob(Protocol):
    """The columns of a queued job a pass reads (never the definition: it can be large)."""

    id: str
    name: str
    user_id: int
    submitted_at: datetime
    max_runtime_s: float
    priority: int
    placement: str
    not_before: datetime | None
    purpose: str
    campaign: str


_QUEUED_COLUMNS = (
    JobRow.id,
    JobRow.name,
    JobRow.user_id,
    JobRow.submitted_at,
    JobRow.max_runtime_s,
    JobRow.priority,
    JobRow.placement,
    JobRow.not_before,
    JobRow.purpose,
    JobRow.campaign,
)


@dataclass
class FarmState:
    """A snapshot plus the rows it was built from (to apply decisions and explain them)."""

    snapshot: Snapshot
    target_ids: dict[str, int]
    jobs: dict[str, QueuedJob]
    users: dict[int, str]


def _users(session: Session) -> dict[int, str]:
    return dict(session.execute(select(UserRow.id, UserRow.name)).all())


def _target_views(session: Session, now: datetime) -> tuple[list[TargetView], dict[str, int]]:
    """The policy's view of every target (only the columns it needs: a pass must not decode
    every target's description)."""
    views: list[TargetView] = []
    ids: dict[str, int] = {}
    rows = session.execute(
        select(
            TargetRow.id,
            TargetRow.name,
            TargetRow.plugin,
            TargetRow.tags,
            TargetRow.enabled,
            TargetRow.health,
            AgentRow.state,
        ).join(AgentRow)
    )
    for target_id, name, plugin, tags, enabled, health, agent_state in rows:
        ids[name] = target_id
        if health not in ("retired", "maintenance") and agent_state != "online":
            health = "offline"
        views.append(
            TargetView(
                id=str(target_id),
                name=name,
                plugin=plugin,
                tags=frozenset(tags),
                enabled=enabled,
                health=health,
            )
        )
    return views, ids


def run_view(job: QueuedJob, users: Mapping[int, str], allowed: frozenset[str] | None) -> RunView:
    """The policy's view of a queued job."""
    placement = json.loads(job.placement)
    return RunView(
        id=job.id,
        user=users.get(job.user_id, "?"),
        submitted_at=utc(job.submitted_at),  # type: ignore[arg-type]
        max_runtime_s=job.max_runtime_s,
        priority=job.priority,
        wanted_target=placement.get("plugin"),
        required_tags=frozenset(placement.get("tags", ())),
        not_before=utc(job.not_before),
        allowed=allowed,
        health_check=job.purpose == HEALTH_PURPOSE,
    )


def allowed_targets(placement: str, session: Session) -> frozenset[str] | None:
    """Target names an exact-target or attribute placement allows (None: tags/plugin suffice)."""
    data = json.loads(placement)
    if not data.get("target") and not data.get("attributes"):
        return None
    query = select(TargetRow)
    if data.get("target"):
        query = query.where(TargetRow.name == data["target"])
    return frozenset(row.name for row in session.scalars(query) if placement_matches(data, row))


def _reservations(
    session: Session, now: datetime, users: Mapping[int, str], targets: Mapping[str, int]
) -> list[Reservation]:
    names = {target_id: name for name, target_id in targets.items()}
    query = select(ReservationRow).where(
        ReservationRow.ends_at > now, ReservationRow.canceled_at.is_(None)
    )
    return [
        Reservation(
            id=str(r.id),
            user=users.get(r.user_id, "?"),
            target=names.get(r.target_id, "?"),
            starts_at=utc(r.starts_at),  # type: ignore[arg-type]
            ends_at=utc(r.ends_at),  # type: ignore[arg-type]
            lend_idle=r.lend_idle,
        )
        for r in session.scalars(query)
    ]


def usage_entries(
    session: Session,
    now: datetime,
    window_s: float,
    users: Mapping[int, str],
    targets: Mapping[str, int],
) -> list[UsageEntry]:
    """The window's ledger: closed rows inside it summed in SQL per (user, target), each sum
    given as one entry ending now (same seconds in the window); rows that straddle its start
    and open rows as they are."""
    lo = now - timedelta(seconds=window_s)
    names = {target_id: name for name, target_id in targets.items()}
    entries: list[UsageEntry] = []
    sums = session.execute(
        select(UsageRow.user_id, UsageRow.target_id, func.sum(UsageRow.seconds))
        .where(UsageRow.ended_at.is_not(None), UsageRow.started_at >= lo)
        .group_by(UsageRow.user_id, UsageRow.target_id)
    )
    for user_id, target_id, seconds in sums:
        if seconds:
            entries.append(
                UsageEntry(
                    users.get(user_id, "?"),
                    names.get(target_id, "?"),
                    now - timedelta(seconds=float(seconds)),
                    now,
                )
            )
    partial = select(
        UsageRow.user_id, UsageRow.target_id, UsageRow.started_at, UsageRow.ended_at
    ).where(
        or_(UsageRow.ended_at.is_(None), and_(UsageRow.started_at < lo, UsageRow.ended_at > lo))
    )
    for user_id, target_id, started_at, ended_at in session.execute(partial):
        entries.append(
            UsageEntry(
                users.get(user_id, "?"),
                names.get(target_id, "?"),
                utc(started_at),  # type: ignore[arg-type]
                utc(ended_at),
            )
        )
    return entries


def farm_state(
    session: Session,
    now: datetime,
    settings: SchedulingSettings,
    *,
    heads: int | Literal["free"] | None,
    not_free: Iterable[str] = (),
) -> FarmState:
    """The snapshot of the farm. ``heads``: how many jobs per queue group to read ("free":
    as many as there are free targets; None: the whole queue, for the queue view).
    ``not_free``: targets to treat as busy (an agent's targets it did not offer)."""
    users = _users(session)
    views, ids = _target_views(session, now)
    running = {
        name: job_id
        for name, job_id in session.execute(
            select(TargetRow.name, JobRow.id)
            .join(JobRow, JobRow.target_id == TargetRow.id)
            .where(JobRow.state.in_(ACTIVE_STATES))
        )
    }
    for name in not_free:
        running.setdefault(name, "(not offered by its agent)")
    if heads == "free":
        probe = Snapshot(targets=views, queued=(), now=now, running=running)
        heads = sum(1 for view in views if target_eligible(probe, view))
    queued = select(*_QUEUED_COLUMNS).where(JobRow.state == "queued")
    jobs: list[Any] = []
    if heads is None:
        jobs = list(session.execute(queued.order_by(JobRow.submitted_at, JobRow.id)))
    elif heads > 0:
        # max_runtime_s is part of the group: a shorter run may fit before a reservation
        # that a longer one of the same user and placement would cross into.
        groups = session.execute(
            select(JobRow.user_id, JobRow.priority, JobRow.placement, JobRow.max_runtime_s)
            .where(JobRow.state == "queued")
            .distinct()
        )
        due = or_(JobRow.not_before.is_(None), JobRow.not_before <= now)
        for user_id, priority, placement, max_runtime in list(groups):
            jobs += session.execute(
                queued.where(
                    JobRow.user_id == user_id,
                    JobRow.priority == priority,
                    JobRow.placement == placement,
                    JobRow.max_runtime_s == max_runtime,
                    due,
                )
                .order_by(JobRow.submitted_at, JobRow.id)
                .limit(heads)
            )
    allowed_cache: dict[str, frozenset[str] | None] = {}
    runs: list[RunView] = []
    for job in jobs:
        if job.placement not in allowed_cache:
            allowed_cache[job.placement] = allowed_targets(job.placement, session)
        runs.append(run_view(job, users, allowed_cache[job.placement]))
    snapshot = Snapshot(
        targets=views,
        queued=runs,
        now=now,
        running=running,
        reservations=_reservations(session, now, users, ids),
        usage=usage_entries(session, now, settings.window_hours * 3600.0, users, ids),
    )
    return FarmState(snapshot, ids, {job.id: job for job in jobs}, users)
