"""Reservations (REQ-00012): a user holds a target, or every target a tag selector matches,
for a time window. During it only the holder's runs start there (others' too while the holder
has nothing waiting, if ``lend_idle``); outside it, a run whose ``max_runtime_s`` would cross
into it does not start. The policy enforces both; this module keeps the windows valid.

Limits (:class:`~deploybench.scheduler.settings.SchedulingSettings`): the longest window, and
reserved target-hours per user in the week (Monday 00:00 UTC on) a window starts in. An overlap
with another window on the same target is refused, naming its holder. Cancelling a window
that has started ends it now: the hours used still count.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from deploybench.errors import UserError
from deploybench.scheduler.settings import SchedulingSettings
from deploybench.services.auth import ForbiddenError, Principal, Role
from deploybench.services.farm import EventSink
from deploybench.services.lab_types import NotFoundError, utc
from deploybench.store.lab_models import ReservationRow, TargetRow, UserRow

WEEK = timedelta(days=7)


def _now() -> datetime:
    return datetime.now(UTC)


def reservations_in_force(session: Session, now: datetime) -> bool:
    """Whether any reservation is active or still to come."""
    found = session.scalar(
        select(ReservationRow.id)
        .where(ReservationRow.ends_at > now, ReservationRow.canceled_at.is_(None))
        .limit(1)
    )
    return found is not None


def _clock(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


class Reservations:
    """Create, list and cancel reservations."""

    def __init__(
        self, sessions: sessionmaker[Session], settings: SchedulingSettings, event: EventSink
    ) -> None:
        self._sessions = sessions
        self.settings = settings
        self._event = event

    def _targets(self, session: Session, target: str | None, tags: list[str]) -> list[TargetRow]:
        rows = [
            t
            for t in session.scalars(select(TargetRow).order_by(TargetRow.name))
            if t.health != "retired"
        ]
        if target is None and not tags:
            raise UserError("say what to reserve: a target name, or tags (a selector)")
        if target is not None and all(t.name != target for t in rows):
            known = ", ".join(t.name for t in rows) or "none"
            raise NotFoundError(f"no target '{target}'; targets: {known}")
        chosen = [
            t for t in rows if (target is None or t.name == target) and set(tags) <= set(t.tags)
        ]
        if not chosen:
            known = "; ".join(f"{t.name} [{', '.join(t.tags)}]" for t in rows) or "none"
            what = f"target '{target}'" if target else "no target"
            raise UserError(
                f"{what} matches{' tags ' + ', '.join(tags) if tags else ''}: nothing to "
                f"reserve; targets and their tags: {known}"
            )
        return chosen

    def create(
        self,
        principal: Principal,
        starts_at: datetime,
        ends_at: datetime,
        target: str | None = None,
        tags: list[str] | None = None,
        lend_idle: bool | None = None,
        note: str = "",
    ) -> list[dict[str, Any]]:
        """Reserve one target, or each target matching ``tags``; all or nothing."""
        if principal.role is Role.AGENT:
            raise ForbiddenError("agent accounts cannot reserve targets")
        now = _now()
        starts_at, ends_at = utc(starts_at), utc(ends_at)  # type: ignore[assignment]
        if ends_at <= starts_at:
            raise UserError(
                f"the reservation ends ({_clock(ends_at)}) before it starts ({_clock(starts_at)})"
            )
        if ends_at <= now:
            raise UserError(f"the reservation window ends in the past ({_clock(ends_at)})")
        if starts_at < now - timedelta(minutes=1):
            raise UserError(
                f"the reservation starts in the past ({_clock(starts_at)}); start it now or later"
            )
        starts_at = max(starts_at, now)
        hours = (ends_at - starts_at).total_seconds() / 3600
        limit = self.settings.reservation_max_hours
        if hours > limit:
            raise UserError(
                f"the reservation lasts {hours:.2f} h; the lab allows at most {limit:g} h"
            )
        lend = self.settings.reservation_lend_idle if lend_idle is None else lend_idle
        with self._sessions.begin() as session:
            targets = self._targets(session, target, tags or [])
            self._check_week(session, principal, starts_at, ends_at, len(targets) * hours)
            made: list[ReservationRow] = []
            for t in targets:
                clash = session.scalar(
                    select(ReservationRow).where(
                        ReservationRow.target_id == t.id,
                        ReservationRow.canceled_at.is_(None),
                        ReservationRow.starts_at < ends_at,
                        ReservationRow.ends_at > starts_at,
                    )
                )
                if clash is not None:
                    owner = session.get(UserRow, clash.user_id)
                    holder = "you" if clash.user_id == principal.user_id else None
                    raise UserError(
                        f"{t.name} is already reserved by "
                        f"{holder or (owner.name if owner else '?')} from "
                        f"{_clock(utc(clash.starts_at))} to {_clock(utc(clash.ends_at))} "  # type: ignore[arg-type]
                        f"(reservation {clash.id}); pick another window or target "
                        "(`deploybench reservations list`)"
                    )
                row = ReservationRow(
                    user_id=principal.user_id,
                    target_id=t.id,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    lend_idle=lend,
                    note=note[:256],
                    created_at=now,
                )
                session.add(row)
                made.append(row)
                self._event(
                    session,
                    None,
                    "reservation",
                    f"{principal.name} reserved {t.name} from {_clock(starts_at)} to "
                    f"{_clock(ends_at)}",
                )
            session.flush()
            return [self._json(session, r) for r in made]

    def _check_week(
        self,
        session: Session,
        principal: Principal,
        starts_at: datetime,
        ends_at: datetime,
        new_hours: float,
    ) -> None:
        """Reserved target-hours of the user in the week (Monday 00:00 UTC on) that the new
        window starts in, the new one included."""
        monday = datetime.combine(
            (starts_at - timedelta(days=starts_at.weekday())).date(),
            datetime.min.time(),
            tzinfo=UTC,
        )
        held = 0.0
        for r in session.scalars(
            select(ReservationRow).where(
                ReservationRow.user_id == principal.user_id,
                ReservationRow.canceled_at.is_(None),
                ReservationRow.starts_at >= monday,
                ReservationRow.starts_at < monday + WEEK,
            )
        ):
            held += (utc(r.ends_at) - utc(r.starts_at)).total_seconds() / 3600  # type: ignore[operator]
        limit = self.settings.reservation_hours_per_week
        if held + new_hours > limit + 1e-9:
            raise UserError(
                f"this reservation ({new_hours:.2f} target-hours) would bring you to "
                f"{held + new_hours:.2f} reserved target-hours in the week of "
                f"{monday.date().isoformat()}; the lab allows {limit:g}. Cancel one "
                "(`deploybench reservations cancel ID`) or reserve less"
            )

    def _json(self, session: Session, row: ReservationRow) -> dict[str, Any]:
        user = session.get(UserRow, row.user_id)
        target = session.get(TargetRow, row.target_id)
        return {
            "id": row.id,
            "user": user.name if user else "?",
            "target": target.name if target else "?",
            "starts_at": utc(row.starts_at).isoformat(),  # type: ignore[union-attr]
            "ends_at": utc(row.ends_at).isoformat(),  # type: ignore[union-attr]
            "lend_idle": row.lend_idle,
            "note": row.note,
            "canceled": row.canceled_at is not None,
        }

    def list(self, include_past: bool = False) -> list[dict[str, Any]]:
        """Reservations (everyone sees the calendar), soonest first."""
        now = _now()
        query = select(ReservationRow).order_by(ReservationRow.starts_at, ReservationRow.id)
        if not include_past:
            query = query.where(ReservationRow.ends_at > now, ReservationRow.canceled_at.is_(None))
        with self._sessions() as session:
            return [self._json(session, r) for r in session.scalars(query)]

    def cancel(self, principal: Principal, reservation_id: int) -> dict[str, Any]:
        """Cancel a reservation (its holder, or an operator)."""
        with self._sessions.begin() as session:
            row = session.get(ReservationRow, reservation_id)
            now = _now()
            if row is None or row.canceled_at is not None:
                raise NotFoundError(f"no active reservation {reservation_id}")
            if row.user_id != principal.user_id and not principal.sees_everything:
                raise ForbiddenError(f"reservation {reservation_id} belongs to another user")
            if utc(row.ends_at) <= now:  # type: ignore[operator]
                raise UserError(f"reservation {reservation_id} has already ended")
            if utc(row.starts_at) <= now:  # type: ignore[operator]
                row.ends_at = now  # started: end it now, the hours used still count
            else:
                row.canceled_at = now
            self._event(
                session, None, "reservation", f"reservation {row.id} canceled by {principal.name}"
            )
            return self._json(session, row)
