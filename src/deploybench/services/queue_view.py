"""The queue as users and operators see it (REQ-00048): each queued run's position, why it
waits, and when it should start and how long it should take, estimated from history.

Reasons follow the policy (:mod:`deploybench.scheduler.fairshare`) and name what is in the
way: the paused scheduler, a retry back-off, no healthy compatible target (with each one's
state), a reservation ("target a/local reserved by bob until 14:00"), the runs ranked ahead
("behind 3 runs: 2 of users under their share, 1 submitted earlier"). Estimates carry
provenance ``estimated``: the median duration of the last succeeded runs on that target, or
the declared ``max_runtime_s`` when there is no history.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from deploybench.scheduler.fairshare import (
    Planner,
    RunView,
    Snapshot,
    TargetView,
    active_reservation,
    compatible,
    health_ok,
    is_due,
)
from deploybench.scheduler.settings import SchedulingSettings
from deploybench.services.auth import Principal
from deploybench.services.lab_dispatch import farm_state
from deploybench.services.lab_types import utc
from deploybench.store.lab_models import ACTIVE_STATES, AgentRow, JobRow, TargetRow

if TYPE_CHECKING:
    from deploybench.services.farm import FarmControl

HISTORY = 20


def _clock(when: datetime, now: datetime) -> str:
    return when.strftime("%H:%M UTC" if when.date() == now.date() else "%Y-%m-%d %H:%M UTC")


def _durations(session: Session) -> dict[int, list[float]]:
    """Seconds of the last succeeded runs per target id, newest first."""
    found: dict[int, list[float]] = {}
    rows = session.execute(
        select(JobRow.target_id, JobRow.started_at, JobRow.ended_at)
        .where(JobRow.state == "succeeded", JobRow.target_id.is_not(None))
        .order_by(JobRow.ended_at.desc())
        .limit(50 * HISTORY)
    )
    for target_id, started, ended in rows:
        if target_id is None:
            continue
        spans = found.setdefault(target_id, [])
        if len(spans) < HISTORY and started is not None and ended is not None:
            spans.append((utc(ended) - utc(started)).total_seconds())  # type: ignore[operator]
    return found


class _Estimator:
    def __init__(self, session: Session, targets: dict[str, TargetRow]) -> None:
        self.history = _durations(session)
        self.targets = targets

    def duration(self, target: str, declared: float) -> tuple[float, str]:
        row = self.targets.get(target)
        spans = self.history.get(row.id, []) if row is not None else []
        if spans:
            return statistics.median(spans), f"median of the last {len(spans)} runs on {target}"
        return declared, "declared max_runtime_s (no history on this target)"


def _reason_for_unplaced(
    planner: Planner,
    snapshot: Snapshot,
    run: RunView,
    healthy: list[TargetView],
    all_compatible: list[TargetView],
    ahead: Counter[str],
) -> str:
    now = snapshot.now
    if not is_due(run, now):
        assert run.not_before is not None
        return f"retry back-off until {_clock(run.not_before, now)}"
    if not all_compatible:
        return "no registered target matches its placement"
    if not healthy:
        states = ", ".join(f"{t.name} {t.health}" for t in all_compatible[:4])
        return f"no healthy enabled compatible target ({states})"
    capped = [t for t in healthy if planner.over(run.user, t.name, planner.settings.hard_cap)]
    if len(capped) == len(healthy):
        cap = planner.settings.hard_cap or 0.0
        return f"{run.user} is over the hard cap ({cap:.0%} of a target's time in the window)"
    free = [t for t in healthy if t.name not in snapshot.running and t not in capped]
    blocked = [t for t in free if planner.blocked(run, t)]
    if free and len(blocked) == len(free):
        target = blocked[0]
        res = active_reservation(snapshot, target.name)
        if res is not None and res.user != run.user:
            return f"target {target.name} reserved by {res.user} until {_clock(res.ends_at, now)}"
        nxt = next(
            (
                r
                for r in planner.reservations.get(target.name, ())
                if r.user != run.user and r.starts_at > now
            ),
            None,
        )
        if nxt is not None:
            return (
                f"target {target.name} reserved by {nxt.user} from {_clock(nxt.starts_at, now)};"
                f" its max_runtime_s {run.max_runtime_s:g} would cross into it"
            )
    total = sum(ahead.values())
    if total == 0:
        busy = ", ".join(t.name for t in healthy[:4])
        return f"waiting for a compatible target to free up ({busy})"
    parts = ", ".join(f"{n} {why}" for why, n in ahead.most_common())
    return f"behind {total} run{'s' if total != 1 else ''}: {parts}"


def _why_ahead(planner: Planner, mine: RunView, other: RunView) -> str:
    if other.health_check:
        return "health check"
    if other.priority > mine.priority:
        return "of higher priority"
    key_mine, key_other = planner.rank(mine), planner.rank(other)
    if key_other[1] < key_mine[1]:
        return "of the reservation holder"
    if key_other[2] < key_mine[2]:
        return "of users under the soft cap"
    if other.user != mine.user and key_other[3] < key_mine[3]:
        return "of users under their share"
    return "submitted earlier"


def build_queue_view(
    session: Session,
    now: datetime,
    settings: SchedulingSettings,
    principal: Principal,
    farm: FarmControl,
) -> dict[str, Any]:
    """Everything ``deploybench queue`` shows."""
    state = farm_state(session, now, settings, heads=None)
    snapshot = state.snapshot
    policy = settings.policy_settings()
    planner = Planner(snapshot, policy)
    starting = {d.run_id: d.target for d in planner.plan()}
    order = planner.ordered()
    rows = {t.name: t for t in session.scalars(select(TargetRow))}
    estimator = _Estimator(session, rows)
    paused = farm.paused(session)

    # Target free times: now, or when the running job should end.
    running_rows = list(
        session.execute(
            select(JobRow, TargetRow.name)
            .join(TargetRow, TargetRow.id == JobRow.target_id)
            .where(JobRow.state.in_(ACTIVE_STATES))
        )
    )
    free_at: dict[str, datetime] = {t.name: now for t in snapshot.targets}
    running: list[dict[str, Any]] = []
    hidden: set[str] = set()
    for active, target in running_rows:
        started = utc(active.started_at) or now
        seconds, basis = estimator.duration(target, active.max_runtime_s)
        end = max(now, started + timedelta(seconds=seconds))
        free_at[target] = end
        if not principal.sees_everything and active.user_id != principal.user_id:
            hidden.add(active.id)  # others' work shows as busy time, not as names
            continue
        running.append(
            {
                "id": active.id,
                "name": active.name,
                "owner": state.users.get(active.user_id, "?"),
                "target": target,
                "phase": active.phase,
                "started_at": started.isoformat(),
                "max_runtime_s": active.max_runtime_s,
                "expected_end": end.isoformat(),
                "estimate_basis": basis,
                "provenance": "estimated",
            }
        )

    # Compatible targets per placement signature, whatever their state.
    compat: dict[tuple[object, ...], list[TargetView]] = {}

    def targets_of(run: RunView) -> list[TargetView]:
        key = (run.wanted_target, run.required_tags, run.allowed, run.health_check)
        if key not in compat:
            compat[key] = [t for t in snapshot.targets if compatible(run, t)]
        return compat[key]

    # Runs already walked, grouped by everything _why_ahead looks at but submission time
    # (one representative each), so the walk stays linear in the queue's length.
    seen: dict[tuple[object, ...], tuple[frozenset[str], RunView, int]] = {}
    queued: list[dict[str, Any]] = []
    others = 0
    for position, run in enumerate(order, start=1):
        all_compatible = targets_of(run)
        names = frozenset(t.name for t in all_compatible)
        healthy = [t for t in all_compatible if t.enabled and health_ok(run, t)]
        ahead: Counter[str] = Counter()
        for other_names, other, count in seen.values():
            if other_names & names:
                ahead[_why_ahead(planner, run, other)] += count
        rank = planner.rank(run)
        group = (names, run.user, run.priority, run.health_check, rank[1], rank[2])
        _, first, count = seen.get(group, (names, run, 0))
        seen[group] = (names, first, count + 1)
        if paused is not None:
            reason = f"scheduler paused by {paused.get('by')}: {paused.get('message') or ''}"
        elif run.id in starting:
            reason = f"starts now on {starting[run.id]}"
        else:
            reason = _reason_for_unplaced(planner, snapshot, run, healthy, all_compatible, ahead)
        job = state.jobs[run.id]
        if not principal.sees_everything and job.user_id != principal.user_id:
            others += 1
            continue
        slots = sorted(free_at[t.name] for t in healthy) or [now]
        ahead_count = sum(ahead.values())
        chosen = healthy[0].name if healthy else (all_compatible[0].name if names else "")
        seconds, basis = estimator.duration(chosen, run.max_runtime_s)
        start = slots[ahead_count % len(slots)] + timedelta(
            seconds=seconds * (ahead_count // len(slots))
        )
        if run.not_before is not None:
            start = max(start, run.not_before)
        queued.append(
            {
                "id": run.id,
                "name": job.name,
                "owner": run.user,
                "priority": run.priority,
                "purpose": job.purpose,
                "position": position,
                "submitted_at": run.submitted_at.isoformat(),
                "placement": json.loads(job.placement),
                "reason": reason,
                "estimated_start": max(start, now).isoformat() if healthy else None,
                "estimated_duration_s": round(seconds, 3),
                "estimate_basis": basis,
                "provenance": "estimated",
            }
        )
    agents = {a.id: a for a in session.scalars(select(AgentRow))}
    targets = []
    for view in snapshot.targets:
        row = rows[view.name]
        res = active_reservation(snapshot, view.name)
        until = utc(row.maintenance_until)
        targets.append(
            {
                "name": view.name,
                "plugin": view.plugin,
                "health": view.health,
                "health_reason": row.health_reason,
                "enabled": view.enabled,
                "agent_state": agents[row.agent_id].state if row.agent_id in agents else "?",
                "running": (
                    "(another user's run)"
                    if snapshot.running.get(view.name) in hidden
                    else snapshot.running.get(view.name)
                ),
                "tags": sorted(view.tags),
                "maintenance_until": until.isoformat() if until else None,
                "reserved_by": (
                    {"user": res.user, "until": res.ends_at.isoformat()} if res else None
                ),
            }
        )
    return {
        "now": now.isoformat(),
        "paused": paused,
        "broadcasts": farm.broadcasts(),
        "targets": targets,
        "running": running,
        "queued": queued,
        "others_queued": others,
    }
