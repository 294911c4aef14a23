"""The usage ledger (who held which target, when, in which phase) and the reports over it.

Rows are written by the lab's state machine inside its own transactions: opened when a
lease starts, closed and reopened at each phase change, closed when the attempt ends. The
reports are SQL aggregates of closed rows plus the open ones measured up to now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from deploybench.scheduler.fairshare import PolicySettings
from deploybench.scheduler.settings import SchedulingSettings
from deploybench.services.auth import Principal
from deploybench.services.lab_types import utc
from deploybench.store.lab_models import JobRow, TargetRow, UsageRow, UserRow


def open_usage(session: Session, job: JobRow, phase: str, now: datetime) -> None:
    """Start charging ``job``'s user for its target in ``phase``."""
    assert job.target_id is not None
    open_usage_of(session, job.id, job.user_id, job.target_id, job.campaign, phase, now)


def open_usage_of(
    session: Session,
    job_id: str,
    user_id: int,
    target_id: int,
    campaign: str,
    phase: str,
    now: datetime,
) -> None:
    """:func:`open_usage` from the job's columns (a dispatch pass has no ORM row)."""
    session.add(
        UsageRow(
            job_id=job_id,
            user_id=user_id,
            target_id=target_id,
            campaign=campaign,
            phase=phase,
            started_at=now,
        )
    )


def close_usage(session: Session, job_id: str, now: datetime) -> None:
    """Close the job's open ledger rows at ``now``."""
    for row in session.scalars(
        select(UsageRow).where(UsageRow.job_id == job_id, UsageRow.ended_at.is_(None))
    ):
        row.ended_at = now
        started = utc(row.started_at)
        assert started is not None
        row.seconds = max(0.0, (now - started).total_seconds())


def change_phase(session: Session, job: JobRow, phase: str, now: datetime) -> None:
    """Close the current row and open one for the new phase."""
    close_usage(session, job.id, now)
    open_usage(session, job, phase, now)


def close_orphans(session: Session, now: datetime) -> int:
    """Close rows of jobs that are no longer active (a crash between two writes)."""
    from deploybench.store.lab_models import ACTIVE_STATES

    active = select(JobRow.id).where(JobRow.state.in_(ACTIVE_STATES))
    rows = list(
        session.scalars(
            select(UsageRow).where(UsageRow.ended_at.is_(None), UsageRow.job_id.not_in(active))
        )
    )
    for row in rows:
        close_usage(session, row.job_id, now)
    return len(rows)


@dataclass(frozen=True)
class ShareState:
    """Where a user stands in the fair share right now."""

    user: str
    share: float
    used_s: float
    normalized: float
    state: str


class Accounting:
    """Usage reports (per user per day, per target, per experiment) and fair-share state."""

    def __init__(self, sessions: sessionmaker[Session], settings: SchedulingSettings) -> None:
        self._sessions = sessions
        self.settings = settings

    def _rows(
        self, session: Session, since: datetime, principal: Principal
    ) -> list[tuple[UsageRow, str, str, str]]:
        query = (
            select(UsageRow, UserRow.name, TargetRow.name, JobRow.name)
            .join(UserRow, UserRow.id == UsageRow.user_id)
            .join(TargetRow, TargetRow.id == UsageRow.target_id)
            .join(JobRow, JobRow.id == UsageRow.job_id)
            .where((UsageRow.ended_at.is_(None)) | (UsageRow.ended_at > since))
        )
        if not principal.sees_everything:
            query = query.where(UsageRow.user_id == principal.user_id)
        return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]

    def report(
        self, principal: Principal, days: int = 7, now: datetime | None = None
    ) -> dict[str, Any]:
        """Seconds per user per day, per target, per experiment and per phase over the last
        ``days``, and each user's fair-share state (operators see everyone, users themselves)."""
        now = now or datetime.now(UTC)
        since = now - timedelta(days=days)
        by_day: dict[tuple[str, str], float] = defaultdict(float)
        by_target: dict[tuple[str, str], float] = defaultdict(float)
        by_experiment: dict[tuple[str, str], float] = defaultdict(float)
        by_phase: dict[tuple[str, str], float] = defaultdict(float)
        with self._sessions() as session:
            for row, user, target, experiment in self._rows(session, since, principal):
                started = utc(row.started_at)
                assert started is not None
                start: datetime = max(started, since)
                end: datetime = utc(row.ended_at) or now
                # Split at midnights (UTC) so a run over a day boundary counts in both days.
                while start < end:
                    midnight = datetime.combine(
                        start.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC
                    )
                    piece_end = min(end, midnight)
                    seconds = (piece_end - start).total_seconds()
                    by_day[(user, start.date().isoformat())] += seconds
                    by_target[(user, target)] += seconds
                    by_experiment[(user, experiment)] += seconds
                    by_phase[(user, row.phase)] += seconds
                    start = piece_end
            shares = self.share_states(session, now, principal)

        def rows(data: dict[tuple[str, str], float], key: str) -> list[dict[str, Any]]:
            return [
                {"user": u, key: k, "seconds": round(s, 3)} for (u, k), s in sorted(data.items())
            ]

        return {
            "since": since.isoformat(),
            "until": now.isoformat(),
            "per_day": rows(by_day, "day"),
            "per_target": rows(by_target, "target"),
            "per_experiment": rows(by_experiment, "experiment"),
            "per_phase": rows(by_phase, "phase"),
            "fair_share": [s.__dict__ for s in shares],
        }

    def share_states(
        self, session: Session, now: datetime, principal: Principal | None = None
    ) -> list[ShareState]:
        """Usage in the window over the share weight, and whether the user is under their
        fair share of the farm, over it, or over the soft/hard cap on some target."""
        from deploybench.services.lab_dispatch import usage_entries

        policy: PolicySettings = self.settings.policy_settings()
        users = dict(session.execute(select(UserRow.id, UserRow.name)).all())
        targets = dict(session.execute(select(TargetRow.name, TargetRow.id)).all())
        entries = usage_entries(session, now, policy.window_s, users, targets)
        used: dict[str, float] = defaultdict(float)
        per_target: dict[tuple[str, str], float] = defaultdict(float)
        lo = now - timedelta(seconds=policy.window_s)
        for e in entries:
            end = e.ended_at or now
            seconds = max(0.0, (min(end, now) - max(e.started_at, lo)).total_seconds())
            used[e.user] += seconds
            per_target[(e.user, e.target)] += seconds
        waiting = set(
            users.get(uid, "?")
            for uid in session.scalars(select(JobRow.user_id).where(JobRow.state == "queued"))
        )
        active = sorted(set(used) | waiting)
        weights = {u: policy.share(u) for u in active}
        total_used = sum(used.values())
        total_weight = sum(weights.values()) or 1.0
        states: list[ShareState] = []
        for user in active:
            if principal is not None and not principal.sees_everything and user != principal.name:
                continue
            fair = total_used * weights[user] / total_weight
            window = policy.window_s
            caps = [
                (policy.hard_cap, "over hard cap"),
                (policy.soft_cap, "over soft cap"),
            ]
            state = "under share" if used[user] <= fair + 1e-9 else "over share"
            for cap, label in caps:
                if cap is not None and any(
                    s > cap * window for (u, _), s in per_target.items() if u == user
                ):
                    state = label
                    break
            states.append(
                ShareState(
                    user=user,
                    share=weights[user],
                    used_s=round(used[user], 3),
                    normalized=round(used[user] / weights[user], 3),
                    state=state,
                )
            )
        return states
