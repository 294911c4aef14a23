"""The lab's job lifecycle: submit, lease to agents (fenced by epoch), heartbeat, finish,
expire lost leases, abort / suspend / resume, and the event log.

Dispatch order is a replaceable pure function (:mod:`deploybench.scheduler.policy`); this
module only applies its decision atomically: a lease is an ``UPDATE ... WHERE state='queued'``
and the partial unique index on ``jobs.target_id`` keeps one active job per target even if two
servers decide at once.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from deploybench.errors import UserError
from deploybench.runner.record import RunRecord
from deploybench.scheduler.policy import QueuedJob, pick_job
from deploybench.services.auth import ForbiddenError, Principal, Role
from deploybench.services.lab_submit import prepare_submission
from deploybench.services.lab_types import (
    Assignment,
    FenceError,
    JobView,
    NotFoundError,
    job_json,
    utc,
)
from deploybench.services.notices import CampaignNotice, Notifier
from deploybench.store.lab_models import ACTIVE_STATES, AgentRow, EventRow, JobRow, TargetRow
from deploybench.store.sql import SqlResultStore

__all__ = ["Assignment", "FenceError", "JobView", "LabService", "NotFoundError"]

FINAL_STATES = ("succeeded", "failed", "aborted")
# Infrastructure failures are retried; a model that crashes will crash again.
RETRIED_FAILURES = ("lost", "infrastructure")


def _now() -> datetime:
    return datetime.now(UTC)


class LabService:
    """The lab's state machine over the shared database and result store."""

    def __init__(
        self,
        store: SqlResultStore,
        *,
        lease_ttl: float = 30.0,
        max_attempts: int = 3,
        retry_backoff: float = 2.0,
        notify: Callable[[], None] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self._sessions = sessionmaker(store.engine, expire_on_commit=False)
        self._notify = notify or (lambda: None)
        self._notifier = notifier

    # -- events -----------------------------------------------------------------------------

    @staticmethod
    def _event(
        session: Session, job: JobRow | None, kind: str, message: str, **payload: Any
    ) -> None:
        session.add(
            EventRow(
                ts=_now(),
                job_id=job.id if job else None,
                user_id=job.user_id if job else None,
                kind=kind,
                message=message,
                payload=payload,
            )
        )

    def events_since(
        self, principal: Principal, after: int = 0, job_id: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Events after an id, oldest first, restricted to what the caller may see."""
        query = select(EventRow).where(EventRow.id > after).order_by(EventRow.id).limit(limit)
        if job_id is not None:
            query = query.where(EventRow.job_id == job_id)
        if not principal.sees_everything:
            query = query.where(EventRow.user_id == principal.user_id)
        with self._sessions() as session:
            return [
                {
                    "id": e.id,
                    "ts": utc(e.ts).isoformat(),  # type: ignore[union-attr]
                    "job": e.job_id,
                    "kind": e.kind,
                    "message": e.message,
                    "payload": e.payload,
                }
                for e in session.scalars(query)
            ]

    # -- submission --------------------------------------------------------------------------

    def submit(
        self, principal: Principal, definitions: Sequence[dict[str, Any]], name: str | None = None
    ) -> tuple[str, list[str]]:
        """Validate every definition (nothing is queued if one is bad), then queue them all
        as one campaign. Returns (campaign id, job ids)."""
        if principal.role is Role.AGENT:
            raise ForbiddenError("agent accounts cannot submit experiments")
        if not definitions:
            raise UserError("nothing to submit: give at least one experiment")
        prepared = [
            prepare_submission(definition, index, self.store.artifacts)
            for index, definition in enumerate(definitions)
        ]
        campaign = uuid.uuid4().hex[:12]
        now = _now()
        ids: list[str] = []
        with self._sessions.begin() as session:
            for position, (data, inputs, target) in enumerate(prepared):
                job = JobRow(
                    id=f"job-{uuid.uuid4().hex[:16]}",
                    campaign=campaign,
                    user_id=principal.user_id,
                    name=data["name"],
                    definition=data,
                    inputs=inputs,
                    wanted_target=target,
                    state="queued",
                    attempt=1,
                    max_attempts=self.max_attempts,
                    lease_epoch=0,
                    # Job ids are random: distinct times keep FIFO within the campaign.
                    submitted_at=now + timedelta(microseconds=position),
                )
                session.add(job)
                self._event(session, job, "queued", f"{data['name']} queued for {target}")
                ids.append(job.id)
        self._notify()
        return campaign, ids

    # -- reading ----------------------------------------------------------------------------

    def _visible(self, principal: Principal, job: JobRow | None, job_id: str) -> JobRow:
        if job is None or (not principal.sees_everything and job.user_id != principal.user_id):
            raise NotFoundError(f"no job '{job_id}'")
        return job

    def _view(self, session: Session, job: JobRow) -> JobView:
        from deploybench.store.lab_models import UserRow

        owner = session.get(UserRow, job.user_id)
        target = session.get(TargetRow, job.target_id) if job.target_id else None
        return JobView(
            id=job.id,
            campaign=job.campaign,
            name=job.name,
            owner=owner.name if owner else "?",
            state=job.state,
            attempt=job.attempt,
            target=target.name if target else None,
            phase=job.phase,
            submitted_at=utc(job.submitted_at),  # type: ignore[arg-type]
            started_at=utc(job.started_at),
            ended_at=utc(job.ended_at),
            failure_kind=job.failure_kind,
            error=job.error,
            run_id=job.run_id,
        )

    def get_job(self, principal: Principal, job_id: str) -> JobView:
        """One job, if the caller may see it."""
        with self._sessions() as session:
            return self._view(
                session, self._visible(principal, session.get(JobRow, job_id), job_id)
            )

    def list_jobs(
        self, principal: Principal, campaign: str | None = None, state: str | None = None
    ) -> list[JobView]:
        """Jobs the caller may see, oldest first."""
        query = select(JobRow).order_by(JobRow.submitted_at, JobRow.id)
        if campaign:
            query = query.where(JobRow.campaign == campaign)
        if state:
            query = query.where(JobRow.state == state)
        if not principal.sees_everything:
            query = query.where(JobRow.user_id == principal.user_id)
        with self._sessions() as session:
            return [self._view(session, job) for job in session.scalars(query)]

    # -- agents ------------------------------------------------------------------------------

    def register_agent(
        self, principal: Principal, name: str, version: str, targets: Sequence[dict[str, Any]]
    ) -> list[str]:
        """Record an agent and the targets it drives; returns the farm-wide target names.
        Adding targets never touches other agents' rows."""
        if principal.role not in (Role.AGENT, Role.ADMIN):
            raise ForbiddenError("only agent accounts (or admins) can register agents")
        now = _now()
        names: list[str] = []
        with self._sessions.begin() as session:
            agent = session.scalar(select(AgentRow).where(AgentRow.name == name))
            if agent is None:
                agent = AgentRow(
                    name=name,
                    user_id=principal.user_id,
                    version=version,
                    state="online",
                    last_seen_at=now,
                    created_at=now,
                )
                session.add(agent)
                session.flush()
            elif agent.user_id != principal.user_id and principal.role is not Role.ADMIN:
                raise ForbiddenError(f"agent '{name}' belongs to another account")
            agent.version, agent.state, agent.last_seen_at = version, "online", now
            for info in targets:
                full = f"{name}/{info['name']}"
                row = session.scalar(select(TargetRow).where(TargetRow.name == full))
                if row is None:
                    row = TargetRow(
                        name=full,
                        plugin=info["name"],
                        agent_id=agent.id,
                        info=dict(info),
                        tags=list(info.get("capabilities", [])),
                        enabled=True,
                        health="good",
                        created_at=now,
                    )
                    session.add(row)
                    self._event(session, None, "target", f"target {full} registered")
                else:
                    row.info = dict(info)
                names.append(full)
        return names

    def list_targets(self) -> list[dict[str, Any]]:
        """Every target with its agent, state and description."""
        with self._sessions() as session:
            rows = session.execute(select(TargetRow, AgentRow).join(AgentRow)).all()
            return [
                {
                    "name": target.name,
                    "plugin": target.plugin,
                    "agent": agent.name,
                    "agent_state": agent.state,
                    "enabled": target.enabled,
                    "health": target.health,
                    "info": target.info,
                }
                for target, agent in rows
            ]

    def lease(
        self, principal: Principal, agent: str, free_targets: Sequence[str]
    ) -> Assignment | None:
        """Give the agent the next job for one of its free targets, or None."""
        now = _now()
        with self._sessions.begin() as session:
            agent_row = session.scalar(select(AgentRow).where(AgentRow.name == agent))
            if agent_row is None or (
                agent_row.user_id != principal.user_id and principal.role is not Role.ADMIN
            ):
                raise ForbiddenError(f"agent '{agent}' is not registered to this account")
            agent_row.last_seen_at, agent_row.state = now, "online"
            queued = [
                QueuedJob(j.id, j.wanted_target, utc(j.submitted_at), utc(j.not_before))  # type: ignore[arg-type]
                for j in session.scalars(
                    select(JobRow)
                    .where(JobRow.state == "queued")
                    .order_by(JobRow.submitted_at, JobRow.id)
                )
            ]
            for target in session.scalars(
                select(TargetRow).where(
                    TargetRow.agent_id == agent_row.id,
                    TargetRow.name.in_(list(free_targets)),
                    TargetRow.enabled.is_(True),
                )
            ):
                chosen = pick_job(target.name, target.plugin, queued, now)
                if chosen is None:
                    continue
                try:
                    with session.begin_nested():
                        changed = session.execute(
                            update(JobRow)
                            .where(JobRow.id == chosen.id, JobRow.state == "queued")
                            .values(
                                state="assigned",
                                target_id=target.id,
                                lease_epoch=JobRow.lease_epoch + 1,
                                lease_expires_at=now + timedelta(seconds=self.lease_ttl),
                                started_at=now,
                                phase="assigned",
                            )
                        ).rowcount  # type: ignore[attr-defined]
                except IntegrityError:  # the target got an active job meanwhile
                    continue
                if not changed:
                    continue
                job = session.get(JobRow, chosen.id)
                assert job is not None
                session.refresh(job)
                self._event(
                    session,
                    job,
                    "assigned",
                    f"attempt {job.attempt} assigned to {target.name}",
                    epoch=job.lease_epoch,
                )
                return Assignment(
                    job.id,
                    job.attempt,
                    job.lease_epoch,
                    target.name,
                    job.definition,
                    job.inputs,
                    self.lease_ttl,
                )
        return None

    def _fenced(
        self, session: Session, job_id: str, epoch: int, caller: Principal | None = None
    ) -> JobRow:
        job = session.get(JobRow, job_id)
        if job is None or job.lease_epoch != epoch or job.state not in ACTIVE_STATES:
            raise FenceError(
                f"lease epoch {epoch} of {job_id} is not current: the job was re-queued, "
                "aborted or finished; stop working on it"
            )
        self._check_holder(session, job, caller)
        return job

    @staticmethod
    def _check_holder(session: Session, job: JobRow, caller: Principal | None) -> None:
        """Only the account of the agent that holds the lease (or an admin) may act on it."""
        if caller is None or caller.role is Role.ADMIN or job.target_id is None:
            return
        target = session.get(TargetRow, job.target_id)
        agent = session.get(AgentRow, target.agent_id) if target else None
        if agent is None or agent.user_id != caller.user_id:
            raise ForbiddenError(f"job {job.id} is leased to another agent")

    def heartbeat(
        self,
        job_id: str,
        epoch: int,
        phase: str | None = None,
        caller: Principal | None = None,
    ) -> str | None:
        """Extend the lease; returns 'abort' or 'suspend' when the job must stop."""
        with self._sessions.begin() as session:
            job = self._fenced(session, job_id, epoch, caller)
            job.lease_expires_at = _now() + timedelta(seconds=self.lease_ttl)
            if phase and phase != job.phase:
                job.phase = phase
                job.state = "running"
                self._event(session, job, "phase", f"phase {phase}")
            return job.cancel

    def log(
        self, job_id: str, epoch: int, lines: Sequence[str], caller: Principal | None = None
    ) -> None:
        """Append agent log lines (timestamped) to the job's events."""
        with self._sessions.begin() as session:
            job = self._fenced(session, job_id, epoch, caller)
            for line in lines:
                self._event(session, job, "log", line)

    def finish(
        self,
        job_id: str,
        epoch: int,
        record: RunRecord | None,
        failure_kind: str | None = None,
        message: str | None = None,
        caller: Principal | None = None,
    ) -> JobView:
        """Close an attempt. With a record, its artifacts must already be uploaded; the run is
        stored once (a retried finish of the same epoch is answered with the same result).
        When this ends the campaign, its owner is notified."""
        view = self._finish(job_id, epoch, record, failure_kind, message, caller)
        if view.state in FINAL_STATES:
            self._announce_finished({view.campaign})
        return view

    def _finish(
        self,
        job_id: str,
        epoch: int,
        record: RunRecord | None,
        failure_kind: str | None = None,
        message: str | None = None,
        caller: Principal | None = None,
    ) -> JobView:
        with self._sessions.begin() as session:
            job = session.get(JobRow, job_id)
            if job is not None and job.lease_epoch == epoch and job.state not in ACTIVE_STATES:
                return self._view(session, job)  # idempotent repeat (ended, held or re-queued)
            job = self._fenced(session, job_id, epoch, caller)
            now = _now()
            if job.cancel is not None:
                state = "held" if job.cancel == "suspend" else "aborted"
                self._close(session, job, state, now, "canceled", job.cancel)
                if state == "held":
                    job.target_id = None
                return self._view(session, job)
            if record is not None:
                from deploybench.store.lab_models import UserRow

                owner = session.get(UserRow, job.user_id)
                self.store.save_run(record, None, owner=owner.name if owner else None)
                job.run_id = record.id
                kind = record.error.kind if record.error else None
                self._close(
                    session,
                    job,
                    record.status,
                    now,
                    kind,
                    record.error.message if record.error else None,
                )
                return self._view(session, job)
            self._retry_or_fail(session, job, failure_kind or "infrastructure", message or "", now)
            return self._view(session, job)

    def _announce_finished(self, campaigns: set[str]) -> None:
        """After a commit: notify owners of campaigns that just reached the end (once each)."""
        from deploybench.store.lab_models import UserRow

        for campaign in campaigns:
            with self._sessions.begin() as session:
                jobs = list(session.scalars(select(JobRow).where(JobRow.campaign == campaign)))
                if not jobs or any(j.state not in FINAL_STATES for j in jobs):
                    continue
                done = session.scalar(
                    select(EventRow.id).where(
                        EventRow.kind == "campaign", EventRow.message == campaign
                    )
                )
                if done is not None:
                    continue  # already announced (two finishes racing)
                self._event(session, jobs[0], "campaign", campaign, outcome=jobs[0].state)
                owner = session.get(UserRow, jobs[0].user_id)
                notice = CampaignNotice(
                    campaign=campaign,
                    owner=owner.name if owner else "?",
                    email=owner.email if owner else None,
                    webhook=owner.webhook_url if owner else None,
                    jobs=[job_json(self._view(session, j)) for j in jobs],
                )
            if self._notifier is not None:
                # Mail and webhooks can be slow: never keep an agent's request waiting on them.
                threading.Thread(target=self._notifier.send, args=(notice,), daemon=True).start()

    def _close(
        self,
        session: Session,
        job: JobRow,
        state: str,
        now: datetime,
        kind: str | None,
        message: str | None,
    ) -> None:
        job.state, job.ended_at, job.failure_kind, job.error = state, now, kind, message
        job.lease_expires_at = None
        self._event(session, job, state, f"{job.name}: {state}" + (f" ({kind})" if kind else ""))

    def _retry_or_fail(
        self, session: Session, job: JobRow, kind: str, message: str, now: datetime
    ) -> None:
        if kind in RETRIED_FAILURES and job.attempt < job.max_attempts:
            delay = self.retry_backoff * 2 ** (job.attempt - 1)
            self._event(
                session,
                job,
                "retry",
                f"attempt {job.attempt} lost ({kind}: {message}); retrying in {delay:g} s",
            )
            job.state, job.target_id, job.phase = "queued", None, None
            job.attempt += 1
            job.lease_expires_at = None
            job.not_before = now + timedelta(seconds=delay)
            return
        self._close(session, job, "failed", now, kind, message)
        job.target_id = None

    def expire_leases(self) -> list[str]:
        """Re-queue (bounded, with back-off) or fail jobs whose agent stopped heartbeating."""
        now = _now()
        expired: list[str] = []
        campaigns: set[str] = set()
        with self._sessions.begin() as session:
            for job in session.scalars(
                select(JobRow).where(JobRow.state.in_(ACTIVE_STATES), JobRow.lease_expires_at < now)
            ):
                expired.append(job.id)
                job.lease_epoch += 1  # fence off the agent that lost it
                campaigns.add(job.campaign)
                if job.cancel is not None:
                    # A suspended job stays held (resumable) even if its agent is gone.
                    state = "held" if job.cancel == "suspend" else "aborted"
                    self._close(session, job, state, now, "canceled", "agent lost")
                    job.target_id = None
                    continue
                self._retry_or_fail(
                    session,
                    job,
                    "lost",
                    f"no heartbeat for {self.lease_ttl:g} s (agent killed or host down)",
                    now,
                )
        if expired:
            self._notify()
            self._announce_finished(campaigns)
        return expired

    def recover_after_restart(self) -> None:
        """A server outage is not every agent dying: give active leases a fresh TTL."""
        with self._sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.state.in_(ACTIVE_STATES))
                .values(lease_expires_at=_now() + timedelta(seconds=self.lease_ttl))
            )

    # -- control -----------------------------------------------------------------------------

    def _selected(self, session: Session, principal: Principal, ident: str) -> list[JobRow]:
        jobs = list(
            session.scalars(select(JobRow).where(or_(JobRow.id == ident, JobRow.campaign == ident)))
        )
        jobs = [j for j in jobs if principal.sees_everything or j.user_id == principal.user_id]
        if not jobs:
            raise NotFoundError(f"no job or campaign '{ident}'")
        return jobs

    def abort(self, principal: Principal, ident: str) -> int:
        """Abort a job or a campaign: queued/held ones at once, running ones through their
        agent (SIGTERM, then SIGKILL to the process group). Returns how many were affected."""
        return self._control(principal, ident, "abort")

    def suspend(self, principal: Principal, ident: str) -> int:
        """Hold queued jobs; a running measurement is aborted and re-queued as held (never
        paused mid-measurement, which would corrupt its timing)."""
        return self._control(principal, ident, "suspend")

    def resume(self, principal: Principal, ident: str) -> int:
        """Put held jobs back in the queue."""
        with self._sessions.begin() as session:
            count = 0
            for job in self._selected(session, principal, ident):
                if job.state == "held":
                    job.state, job.cancel, job.ended_at = "queued", None, None
                    job.failure_kind = job.error = None
                    self._event(session, job, "queued", f"{job.name} resumed")
                    count += 1
                elif job.state in ACTIVE_STATES and job.cancel == "suspend":
                    job.cancel = None  # not stopped yet: let it carry on
                    count += 1
        self._notify()
        return count

    def _control(self, principal: Principal, ident: str, action: str) -> int:
        now = _now()
        count = 0
        campaigns: set[str] = set()
        with self._sessions.begin() as session:
            for job in self._selected(session, principal, ident):
                if job.state in FINAL_STATES:
                    continue
                count += 1
                if job.state in ACTIVE_STATES:
                    job.cancel = action
                    self._event(session, job, action, f"{action} requested; telling the agent")
                elif action == "abort":
                    self._close(session, job, "aborted", now, "canceled", "aborted by user")
                    campaigns.add(job.campaign)
                elif job.state == "queued":
                    job.state = "held"
                    self._event(session, job, "held", f"{job.name} suspended")
        self._announce_finished(campaigns)
        return count
