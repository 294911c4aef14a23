"""Operating the farm: target health (offline agents, health checks, maintenance, retirement),
enabling and disabling targets, pausing the scheduler, broadcasts, and operator notices.

Health states: ``good`` (serves), ``unknown`` (serves only a health check, which must pass
first), ``bad`` (a health check failed; an operator asks for a new one), ``maintenance``
(optional end time and message), ``retired``. An agent silent for ``offline_after_s`` is
offline: its good targets become unknown, so each is checked before it serves again.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from deploybench.errors import UserError
from deploybench.scheduler.settings import SchedulingSettings
from deploybench.services.auth import ForbiddenError, Principal, Role
from deploybench.services.lab_dispatch import HEALTH_PURPOSE, canonical_placement
from deploybench.services.lab_types import NotFoundError, utc
from deploybench.services.notices import Notice, Notifier
from deploybench.store.artifacts import ArtifactStore
from deploybench.store.lab_models import (
    ACTIVE_STATES,
    AgentRow,
    BroadcastRow,
    JobRow,
    LabStateRow,
    TargetRow,
    UserRow,
)

log = logging.getLogger("deploybench.farm")

HEALTH_STATES = ("good", "unknown", "bad", "maintenance", "retired")
OPERATORS = (Role.OPERATOR, Role.ADMIN)
# The reference run of a health check: the smallest zoo problem, a few hundred inferences.
HEALTH_CHECK_PLAN: dict[str, Any] = {
    "profile": "quick",
    "warmup_runs": 3,
    "warmup_seconds": 0.0,
    "min_iterations": 30,
    "min_duration": 0.05,
    "max_duration": 2.0,
    "repetitions": 1,
    "timeout": 120.0,
}
HEALTH_CHECK_RUNTIME_S = 300.0


class EventSink(Protocol):
    def __call__(
        self, session: Session, job: JobRow | None, kind: str, message: str, **payload: Any
    ) -> None: ...


class JobFactory(Protocol):
    def __call__(
        self,
        campaign: str,
        user_id: int,
        data: dict[str, Any],
        inputs: dict[str, str],
        plugin: str,
        placement: str,
        max_runtime: float,
        purpose: str = "run",
        priority: int = 0,
    ) -> JobRow: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _operator(principal: Principal, what: str) -> None:
    if principal.role not in OPERATORS:
        raise ForbiddenError(f"{what} needs the role operator or admin; you are {principal.role}")


class FarmControl:
    """Health, maintenance, pause and broadcasts over the lab database."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: SchedulingSettings,
        artifacts: ArtifactStore,
        event: EventSink,
        notifier: Notifier | None,
        wake: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self.settings = settings
        self.artifacts = artifacts
        self._event = event
        self._notifier = notifier
        self._wake = wake
        self._checks: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}

    # -- notices ------------------------------------------------------------------------------

    def notify_operators(self, session: Session, subject: str, text: str, **payload: Any) -> None:
        """Mail and webhook every operator and admin (in the background, after the caller)."""
        if self._notifier is None:
            return
        rows = session.scalars(
            select(UserRow).where(UserRow.role.in_([r.value for r in OPERATORS]))
        )
        people = list(rows)
        notice = Notice(
            subject=f"[deploybench] {subject}",
            text=text + "\n",
            payload={"event": payload.pop("event", "farm"), "message": text, **payload},
            emails=[u.email for u in people if u.email],
            webhooks=[u.webhook_url for u in people if u.webhook_url],
        )
        threading.Thread(target=self._notifier.announce, args=(notice,), daemon=True).start()

    # -- health -------------------------------------------------------------------------------

    def _set_health(
        self, session: Session, target: TargetRow, health: str, reason: str | None
    ) -> None:
        if target.health == health and target.health_reason == reason:
            return
        old = target.health
        target.health, target.health_reason = health, reason
        self._event(
            session,
            None,
            "target",
            f"target {target.name}: {old} -> {health}" + (f" ({reason})" if reason else ""),
            target=target.name,
            health=health,
        )
        if health == "bad":
            self.notify_operators(
                session,
                f"target {target.name} is bad",
                f"Target {target.name} failed its health check: {reason}. It takes no work "
                f"until an operator runs `deploybench targets check {target.name}`.",
                event="target.bad",
                target=target.name,
            )

    def suspect(self, session: Session, target: TargetRow, reason: str) -> None:
        """A failure that may be the target's: it needs a health check before more work."""
        if target.health == "good":
            self._set_health(session, target, "unknown", reason)

    def health_result(
        self, session: Session, job: JobRow, ok: bool, now: datetime, reason: str | None = None
    ) -> None:
        """A health check ended: the target is good, or bad (operators are told)."""
        target = session.get(TargetRow, job.target_id) if job.target_id else None
        if target is None or target.health in ("retired", "maintenance"):
            return
        target.health_checked_at = now
        if ok:
            self._set_health(session, target, "good", None)
        else:
            detail = reason or job.error or f"health check {job.id} {job.state}"
            self._set_health(session, target, "bad", detail)

    def check_definition(self, plugin: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The health check's definition and input digests for a target plugin (built once:
        the first build imports the zoo's trainers, which takes seconds)."""
        cached = self._checks.get(plugin)
        if cached is None or not all(self.artifacts.exists(d) for d in cached[1].values()):
            cached = self._build_check(plugin)
            self._checks[plugin] = cached
        return cached

    def _build_check(self, plugin: str) -> tuple[dict[str, Any], dict[str, str]]:
        from deploybench.services.lab_submit import prepare_submission

        definition = {
            "name": "health-check",
            "description": "tiny reference run: is this target fit to serve?",
            "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
            "toolchain": {"name": "onnxruntime"},
            "target": {"name": plugin, "max_runtime_s": HEALTH_CHECK_RUNTIME_S},
            "measurement": HEALTH_CHECK_PLAN,
        }
        data, inputs, _ = prepare_submission(definition, 0, self.artifacts)
        return data, inputs

    def _queue_check(
        self, session: Session, target: TargetRow, agent: AgentRow, new_job: JobFactory, why: str
    ) -> None:
        data, inputs = self.check_definition(target.plugin)
        job = new_job(
            f"health-{uuid.uuid4().hex[:8]}",
            agent.user_id,
            data,
            inputs,
            target.plugin,
            canonical_placement(target.plugin, target.name, health_check=True),
            HEALTH_CHECK_RUNTIME_S,
            purpose=HEALTH_PURPOSE,
        )
        job.max_attempts = 1  # a failed check says "bad"; retrying it would hide that
        session.add(job)
        self._event(session, job, "queued", f"health check of {target.name} queued ({why})")

    def sweep(self, new_job: JobFactory) -> bool:
        """Offline agents, ended maintenance, due health checks. Returns whether anything
        changed that the dispatcher should look at."""
        now = _now()
        changed = False
        with self._sessions.begin() as session:
            silent = now - timedelta(seconds=self.settings.offline_after_s)
            for agent in session.scalars(select(AgentRow).where(AgentRow.state == "online")):
                seen = utc(agent.last_seen_at)
                if seen is not None and seen < silent:
                    agent.state = "offline"
                    changed = True
                    self._event(session, None, "agent", f"agent {agent.name} is offline")
                    names = []
                    for target in session.scalars(
                        select(TargetRow).where(TargetRow.agent_id == agent.id)
                    ):
                        names.append(target.name)
                        self.suspect(session, target, f"agent {agent.name} went offline")
                    self.notify_operators(
                        session,
                        f"agent {agent.name} is offline",
                        f"Agent {agent.name} sent nothing for {self.settings.offline_after_s:g}"
                        f" s; its targets ({', '.join(names)}) are offline and will be "
                        "health-checked when it returns.",
                        event="agent.offline",
                        agent=agent.name,
                        targets=names,
                    )
            for target in session.scalars(
                select(TargetRow).where(
                    TargetRow.health == "maintenance", TargetRow.maintenance_until.is_not(None)
                )
            ):
                until = utc(target.maintenance_until)
                if until is not None and until <= now:
                    target.maintenance_until = None
                    self._set_health(session, target, "unknown", "maintenance ended")
                    changed = True
            changed |= self._due_checks(session, now, new_job)
        return changed

    def _due_checks(self, session: Session, now: datetime, new_job: JobFactory) -> bool:
        pending = set(
            session.scalars(
                select(JobRow.target_id).where(
                    JobRow.purpose == HEALTH_PURPOSE,
                    JobRow.state.in_(("queued", *ACTIVE_STATES)),
                )
            )
        )
        pending_names = {
            json.loads(p).get("target")
            for p in session.scalars(
                select(JobRow.placement).where(
                    JobRow.purpose == HEALTH_PURPOSE, JobRow.state == "queued"
                )
            )
        }
        busy = set(session.scalars(select(JobRow.target_id).where(JobRow.state.in_(ACTIVE_STATES))))
        interval = self.settings.health_check_interval_s
        queued = False
        for target, agent in session.execute(
            select(TargetRow, AgentRow)
            .join(AgentRow)
            .where(TargetRow.enabled.is_(True), TargetRow.health.in_(("good", "unknown")))
        ):
            if agent.state != "online" or target.id in pending or target.name in pending_names:
                continue
            if target.health == "unknown":
                why = target.health_reason or "health unknown"
            elif interval is not None and target.id not in busy:
                last = utc(target.health_checked_at) or utc(target.created_at)
                if last is None or (now - last).total_seconds() < interval:
                    continue
                why = f"periodic, every {interval:g} s"
            else:
                continue
            self._queue_check(session, target, agent, new_job, why)
            queued = True
        return queued

    # -- operator actions -------------------------------------------------------------------

    def _target(self, session: Session, name: str) -> TargetRow:
        target = session.scalar(select(TargetRow).where(TargetRow.name == name))
        if target is None:
            names = ", ".join(session.scalars(select(TargetRow.name).order_by(TargetRow.name)))
            raise NotFoundError(f"no target '{name}'; targets: {names or 'none registered'}")
        return target

    def update_target(
        self,
        principal: Principal,
        name: str,
        *,
        enabled: bool | None = None,
        maintenance: bool | None = None,
        until: datetime | None = None,
        message: str | None = None,
        retired: bool | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Disable/enable, start/end maintenance (optional end and message), retire or
        un-retire, replace the tags. Work already running finishes; nothing new starts on a
        disabled, maintained or retired target. Other targets are never touched."""
        _operator(principal, "changing a target")
        now = _now()
        if until is not None and until <= now:
            raise UserError(f"maintenance end {until.isoformat()} is in the past")
        with self._sessions.begin() as session:
            target = self._target(session, name)
            if enabled is not None and enabled != target.enabled:
                target.enabled = enabled
                word = "enabled" if enabled else "disabled"
                self._event(session, None, "target", f"target {name} {word} by {principal.name}")
            if retired is True:
                target.maintenance_until = None
                self._set_health(session, target, "retired", message or "retired")
            elif retired is False and target.health == "retired":
                self._set_health(session, target, "unknown", "back from retirement")
            if maintenance is True:
                if target.health == "retired":
                    raise UserError(f"target {name} is retired; un-retire it first")
                target.maintenance_until = until
                end = f" until {until.strftime('%Y-%m-%d %H:%M UTC')}" if until else ""
                self._set_health(session, target, "maintenance", (message or "maintenance") + end)
            elif maintenance is False and target.health == "maintenance":
                target.maintenance_until = None
                self._set_health(session, target, "unknown", "maintenance ended")
            if tags is not None:
                target.tags = sorted(set(tags))
                self._event(
                    session, None, "target", f"target {name} tags: {', '.join(target.tags)}"
                )
            view = target_json(target)
        self._wake()
        return view

    def request_check(self, principal: Principal, name: str) -> dict[str, Any]:
        """Mark a target unknown so a health check runs before it serves again."""
        _operator(principal, "a health check")
        with self._sessions.begin() as session:
            target = self._target(session, name)
            if target.health in ("retired", "maintenance"):
                raise UserError(
                    f"target {name} is {target.health}; bring it back first "
                    f"(`deploybench targets enable {name}`)"
                )
            self._set_health(session, target, "unknown", f"check requested by {principal.name}")
            view = target_json(target)
        self._wake()
        return view

    # -- pause ---------------------------------------------------------------------------------

    @staticmethod
    def paused(session: Session) -> dict[str, Any] | None:
        """The pause record ({by, at, message}) while the scheduler is paused, else None."""
        row = session.get(LabStateRow, "scheduler")
        if row is None or not row.value.get("paused"):
            return None
        return dict(row.value)

    def set_paused(self, principal: Principal, paused: bool, message: str = "") -> dict[str, Any]:
        """Pause (nothing new starts; running work finishes) or resume the scheduler."""
        _operator(principal, "pausing the scheduler")
        now = _now()
        value = {"paused": paused, "by": principal.name, "at": now.isoformat(), "message": message}
        with self._sessions.begin() as session:
            row = session.get(LabStateRow, "scheduler")
            if row is None:
                session.add(LabStateRow(key="scheduler", value=value, updated_at=now))
            else:
                row.value, row.updated_at = value, now
            word = "paused" if paused else "resumed"
            self._event(
                session, None, "scheduler", f"scheduler {word} by {principal.name}: {message}"
            )
        self._wake()
        return value

    # -- broadcasts ------------------------------------------------------------------------------

    def broadcast(
        self, principal: Principal, message: str, hours: float | None = 24.0
    ) -> dict[str, Any]:
        """Tell every user something (shown by the CLI and API; mailed when mail is set up)."""
        _operator(principal, "a broadcast")
        if not message.strip():
            raise UserError("the broadcast message is empty")
        now = _now()
        with self._sessions.begin() as session:
            row = BroadcastRow(
                author_id=principal.user_id,
                message=message.strip(),
                created_at=now,
                expires_at=now + timedelta(hours=hours) if hours else None,
            )
            session.add(row)
            session.flush()
            self._event(session, None, "broadcast", message.strip(), author=principal.name)
            people = [u for u in session.scalars(select(UserRow)) if u.role != Role.AGENT.value]
            view = broadcast_json(row, principal.name)
        if self._notifier is not None:
            notice = Notice(
                subject="[deploybench] message from the lab operators",
                text=message.strip() + f"\n\n-- {principal.name}\n",
                payload={"event": "broadcast", **view},
                emails=[u.email for u in people if u.email],
            )
            threading.Thread(target=self._notifier.announce, args=(notice,), daemon=True).start()
        return view

    def broadcasts(self) -> list[dict[str, Any]]:
        """Messages that have not expired, newest first."""
        now = _now()
        with self._sessions() as session:
            rows = session.execute(
                select(BroadcastRow, UserRow.name)
                .join(UserRow, UserRow.id == BroadcastRow.author_id)
                .order_by(BroadcastRow.id.desc())
            )
            return [
                broadcast_json(row, author)
                for row, author in rows
                if row.expires_at is None or utc(row.expires_at) > now  # type: ignore[operator]
            ]


def broadcast_json(row: BroadcastRow, author: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "message": row.message,
        "author": author,
        "created_at": utc(row.created_at).isoformat(),  # type: ignore[union-attr]
        "expires_at": utc(row.expires_at).isoformat() if row.expires_at else None,  # type: ignore[union-attr]
    }


def target_json(target: TargetRow) -> dict[str, Any]:
    until = utc(target.maintenance_until)
    checked = utc(target.health_checked_at)
    return {
        "name": target.name,
        "plugin": target.plugin,
        "enabled": target.enabled,
        "health": target.health,
        "health_reason": target.health_reason,
        "health_checked_at": checked.isoformat() if checked else None,
        "maintenance_until": until.isoformat() if until else None,
        "tags": list(target.tags),
    }
