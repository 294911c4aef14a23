"""The lab's job lifecycle: submit, lease to agents (fenced by epoch), heartbeat, finish,
expire lost leases, abort / suspend / resume, and the event log.

Dispatch order is a pure function (:func:`deploybench.scheduler.fairshare.plan`) over a
snapshot read by :mod:`deploybench.services.lab_dispatch`; this module only applies its
decision atomically: a lease is an ``UPDATE ... WHERE state='queued'`` and the partial unique
index on ``jobs.target_id`` keeps one active job per target even if two servers decide at
once. Farm operations (health, maintenance, pause, broadcasts) live in
:mod:`deploybench.services.farm`, reservations in :mod:`deploybench.services.reservations`,
the usage ledger in :mod:`deploybench.services.accounting`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from deploybench.errors import UserError
from deploybench.runner.record import RunRecord
from deploybench.scheduler.fairshare import plan
from deploybench.scheduler.settings import SchedulingSettings
from deploybench.services import accounting
from deploybench.services.auth import ForbiddenError, Principal, Role
from deploybench.services.farm import FarmControl, target_json
from deploybench.services.lab_compat import refuse_impossible
from deploybench.services.lab_dispatch import (
    HEALTH_PURPOSE,
    QueuedJob,
    canonical_placement,
    farm_state,
    placement_matches,
)
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
from deploybench.services.reservations import Reservations, reservations_in_force
from deploybench.spec import Experiment
from deploybench.store.lab_models import (
    ACTIVE_STATES,
    AgentRow,
    EventRow,
    JobRow,
    TargetRow,
    UsageRow,
    UserRow,
)
from deploybench.store.sql import SqlResultStore

__all__ = ["Assignment", "FenceError", "JobView", "LabService", "NotFoundError"]

FINAL_STATES = ("succeeded", "failed", "aborted")
# Infrastructure failures are retried; a model that crashes will crash again.
RETRIED_FAILURES = ("lost", "infrastructure")
# After these the target itself is suspect: it takes a health check before more work.
SUSPECT_FAILURES = ("lost", "infrastructure")


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
        scheduling: SchedulingSettings | None = None,
        check_compatibility: bool = True,
    ) -> None:
        self.store = store
        self.check_compatibility = check_compatibility
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.scheduling = scheduling or SchedulingSettings()
        self._sessions = sessionmaker(store.engine, expire_on_commit=False)
        self._notify = notify or (lambda: None)
        self._notifier = notifier
        self.farm = FarmControl(
            self._sessions, self.scheduling, store.artifacts, self._event, notifier, self._notify
        )
        self.reservations = Reservations(self._sessions, self.scheduling, self._event)
        self.accounting = accounting.Accounting(self._sessions, self.scheduling)

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
        if self.check_compatibility:
            self._refuse_impossible(prepared)
        campaign = uuid.uuid4().hex[:12]
        now = _now()
        ids: list[str] = []
        with self._sessions.begin() as session:
            targets = list(session.scalars(select(TargetRow).order_by(TargetRow.name)))
            in_force = reservations_in_force(session, now)
            position = 0
            for index, (data, inputs, plugin) in enumerate(prepared):
                max_runtime = self._max_runtime(data, index, in_force)
                for where in self._placements(data, index, plugin, targets):
                    job = self._new_job(
                        campaign, principal.user_id, data, inputs, plugin, where, max_runtime
                    )
                    # Job ids are random: distinct times keep FIFO within the campaign.
                    job.submitted_at = now + timedelta(microseconds=position)
                    position += 1
                    session.add(job)
                    shown = json.loads(where).get("target", plugin)
                    self._event(session, job, "queued", f"{data['name']} queued for {shown}")
                    ids.append(job.id)
        self._notify()
        return campaign, ids

    def _refuse_impossible(
        self, prepared: Sequence[tuple[dict[str, Any], dict[str, str], str]]
    ) -> None:
        """Run each toolchain's checks against the targets the experiment may be placed on,
        outside any write transaction (checks load runtimes and convert models)."""
        with self._sessions() as session:
            targets = list(session.scalars(select(TargetRow).order_by(TargetRow.name)))
        live = [t for t in targets if t.health != "retired"]
        for index, (data, inputs, plugin) in enumerate(prepared):
            keys = [json.loads(k) for k in self._placements(data, index, plugin, targets)]
            candidates = [
                (t.name, t.info) for t in live if any(placement_matches(k, t) for k in keys)
            ]
            refuse_impossible(
                Experiment.model_validate(data),
                data,
                inputs,
                self.store.artifacts,
                candidates,
                index,
            )

    def _new_job(
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
    ) -> JobRow:
        return JobRow(
            id=f"job-{uuid.uuid4().hex[:16]}",
            campaign=campaign,
            user_id=user_id,
            name=data["name"],
            definition=data,
            inputs=inputs,
            wanted_target=plugin,
            state="queued",
            attempt=1,
            max_attempts=self.max_attempts,
            lease_epoch=0,
            submitted_at=_now(),
            priority=priority,
            max_runtime_s=max_runtime,
            placement=placement,
            purpose=purpose,
        )

    def _max_runtime(self, data: dict[str, Any], index: int, in_force: bool) -> float:
        declared = data["target"].get("max_runtime_s")
        limit = self.scheduling.max_runtime_limit_s
        if declared is None:
            if in_force:
                raise UserError(
                    f"experiment [{index}]: target.max_runtime_s is required while "
                    "reservations are in force (the lab must know the run ends before "
                    f"someone's window starts); declare it, at most {limit:g} s"
                )
            return self.scheduling.default_max_runtime_s
        if declared > limit:
            raise UserError(
                f"experiment [{index}]: target.max_runtime_s = {declared:g} s is over the "
                f"lab's limit of {limit:g} s; declare a realistic bound"
            )
        return float(declared)

    @staticmethod
    def _placements(
        data: dict[str, Any], index: int, plugin: str, targets: Sequence[TargetRow]
    ) -> list[str]:
        """One placement key (``any``) or one per matching target (``each``). A selector
        must match some registered target; a bare plugin name may wait for one to join."""
        spec = data["target"].get("placement") or {}
        tags, attributes = spec.get("tags", []), spec.get("attributes", {})
        exact, mode = spec.get("target"), spec.get("mode", "any")
        key = canonical_placement(plugin, exact, tags, attributes)
        if not (exact or tags or attributes or mode == "each"):
            return [key]
        wanted = json.loads(key)
        live = [t for t in targets if t.health != "retired"]
        matching = [t for t in live if placement_matches(wanted, t)]
        if not matching:
            known = "; ".join(f"{t.name} [{', '.join(t.tags)}]" for t in live) or "none yet"
            raise UserError(
                f"experiment [{index}]: target.placement {json.dumps(spec)} matches no "
                f"target of plugin '{plugin}'; farm targets and their tags: {known}"
            )
        if mode == "each":
            return [canonical_placement(plugin, t.name, tags, attributes) for t in matching]
        return [key]

    # -- reading ----------------------------------------------------------------------------

    def _visible(self, principal: Principal, job: JobRow | None, job_id: str) -> JobRow:
        if job is None or (not principal.sees_everything and job.user_id != principal.user_id):
            raise NotFoundError(f"no job '{job_id}'")
        return job

    def _view(self, session: Session, job: JobRow) -> JobView:
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
            priority=job.priority,
            max_runtime_s=job.max_runtime_s,
            purpose=job.purpose,
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
                        # Capabilities and kind; operators add their own later.
                        tags=sorted(
                            {*info.get("capabilities", []), f"kind:{info.get('kind', '?')}"}
                        ),
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
                    **target_json(target),
                    "agent": agent.name,
                    "agent_state": agent.state,
                    "info": target.info,
                }
                for target, agent in rows
            ]

    def lease(
        self, principal: Principal, agent: str, free_targets: Sequence[str]
    ) -> Assignment | None:
        """Give the agent the next job for one of its free targets, or None.

        A job a dispatch pass already assigned to one of those targets is handed over;
        otherwise this call runs a pass (:meth:`dispatch`), which plans over the whole farm
        and assigns work to every free target at once, this agent's included.
        """
        now = _now()
        with self._sessions.begin() as session:
            agent_row = session.scalar(select(AgentRow).where(AgentRow.name == agent))
            if agent_row is None or (
                agent_row.user_id != principal.user_id and principal.role is not Role.ADMIN
            ):
                raise ForbiddenError(f"agent '{agent}' is not registered to this account")
            agent_row.last_seen_at = now
            if agent_row.state != "online":
                agent_row.state = "online"
                self._event(session, None, "agent", f"agent {agent} is back online")
            mine = dict(
                session.execute(
                    select(TargetRow.id, TargetRow.name).where(
                        TargetRow.agent_id == agent_row.id, TargetRow.name.in_(list(free_targets))
                    )
                ).all()
            )
            if not mine:
                return None
            found = self._pick_up(session, mine, now)
        if found is not None:
            return found
        if self.dispatch(agent_row.id, set(mine.values())) == 0:
            return None
        with self._sessions.begin() as session:
            return self._pick_up(session, mine, _now())

    def _pick_up(
        self, session: Session, targets: dict[int, str], now: datetime
    ) -> Assignment | None:
        """Hand over a job a pass assigned to one of ``targets`` (phase ``assigned`` until
        an agent takes it; ``leased`` after). The hand-over is a guarded UPDATE, so two
        polls racing (two replicas, a retried request) never both get it."""
        candidates = session.scalars(
            select(JobRow.id)
            .where(
                JobRow.state == "assigned",
                JobRow.phase == "assigned",
                JobRow.target_id.in_(list(targets)),
            )
            .order_by(JobRow.started_at, JobRow.id)
        ).all()
        for job_id in candidates:
            taken = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == "assigned", JobRow.phase == "assigned")
                .values(phase="leased", lease_expires_at=now + timedelta(seconds=self.lease_ttl))
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if not taken:
                continue
            job = session.get(JobRow, job_id)
            assert job is not None and job.target_id is not None
            session.refresh(job)
            self._event(
                session,
                job,
                "leased",
                f"attempt {job.attempt} leased by the agent of {targets[job.target_id]}",
                epoch=job.lease_epoch,
            )
            return Assignment(
                job.id,
                job.attempt,
                job.lease_epoch,
                targets[job.target_id],
                job.definition,
                job.inputs,
                self.lease_ttl,
            )
        return None

    def dispatch(self, asking_agent: int | None = None, offered: set[str] | None = None) -> int:
        """One scheduling pass: plan over the farm and assign a queued job to every free
        eligible target, in one transaction. Returns how many were assigned.

        Free: enabled, healthy (or unknown, for a health check), no active job, agent
        online and not busy (an agent polls only while idle, so the other targets of a busy
        agent are not free). ``asking_agent``'s targets are free only if ``offered``.
        """
        now = _now()
        assigned = 0
        with self._sessions.begin() as session:
            if self.farm.paused(session) is not None:
                return 0
            busy_agents = set(
                session.scalars(
                    select(TargetRow.agent_id)
                    .join(JobRow, JobRow.target_id == TargetRow.id)
                    .where(JobRow.state.in_(ACTIVE_STATES))
                )
            )
            if asking_agent is not None:
                busy_agents.discard(asking_agent)  # the agent asking knows its own limit
            not_free = list(
                session.scalars(select(TargetRow.name).where(TargetRow.agent_id.in_(busy_agents)))
            )
            if asking_agent is not None:
                not_free += [
                    name
                    for name in session.scalars(
                        select(TargetRow.name).where(TargetRow.agent_id == asking_agent)
                    )
                    if name not in (offered or set())
                ]
            state = farm_state(session, now, self.scheduling, heads="free", not_free=not_free)
            decisions = plan(
                state.snapshot, self.scheduling.policy_settings(), prefer=frozenset(offered or ())
            )
            pairs = [
                (state.jobs[d.run_id], state.target_ids[d.target], d.target) for d in decisions
            ]
            assigned = self._assign_all(session, pairs, now)
        if assigned:
            self._notify()  # wake the agents whose targets got work
        return assigned

    def _assign_all(
        self, session: Session, pairs: Sequence[tuple[QueuedJob, int, str]], now: datetime
    ) -> int:
        """Apply a pass's decisions in bulk: one executemany UPDATE (each guarded by
        ``state='queued'``), then bulk ledger and event rows for those that took. If another
        pass raced us to a target (the unique index), fall back to one job at a time."""
        if not pairs:
            return 0
        table = JobRow.__table__
        statement = (
            table.update()  # type: ignore[attr-defined]
            .where(table.c.id == bindparam("b_id"), table.c.state == "queued")
            .values(
                state="assigned",
                target_id=bindparam("b_target"),
                lease_epoch=table.c.lease_epoch + 1,
                lease_expires_at=now + timedelta(seconds=self.lease_ttl),
                started_at=now,
                phase="assigned",
            )
        )
        try:
            with session.begin_nested():
                session.connection().execute(
                    statement, [{"b_id": job.id, "b_target": tid} for job, tid, _ in pairs]
                )
        except IntegrityError:
            return sum(self._assign(session, job, tid, name, now) for job, tid, name in pairs)
        wanted = {job.id: tid for job, tid, _ in pairs}
        took = {
            job_id
            for job_id, target_id in session.execute(
                select(JobRow.id, JobRow.target_id).where(
                    JobRow.id.in_(list(wanted)),
                    JobRow.state == "assigned",
                    JobRow.started_at == now,
                )
            )
            if wanted[job_id] == target_id
        }
        done = [(job, tid, name) for job, tid, name in pairs if job.id in took]
        if done:
            session.execute(
                insert(UsageRow),
                [
                    {
                        "job_id": job.id,
                        "user_id": job.user_id,
                        "target_id": tid,
                        "campaign": job.campaign,
                        "phase": "assigned",
                        "started_at": now,
                    }
                    for job, tid, _ in done
                ],
            )
            session.execute(
                insert(EventRow),
                [
                    {
                        "ts": now,
                        "job_id": job.id,
                        "user_id": job.user_id,
                        "kind": "assigned",
                        "message": f"assigned to {name}",
                        "payload": {},
                    }
                    for job, _, name in done
                ],
            )
        return len(done)

    def _assign(
        self, session: Session, job: QueuedJob, target_id: int, target: str, now: datetime
    ) -> bool:
        try:
            with session.begin_nested():
                changed = session.execute(
                    update(JobRow)
                    .where(JobRow.id == job.id, JobRow.state == "queued")
                    .values(
                        state="assigned",
                        target_id=target_id,
                        lease_epoch=JobRow.lease_epoch + 1,
                        lease_expires_at=now + timedelta(seconds=self.lease_ttl),
                        started_at=now,
                        phase="assigned",
                    )
                ).rowcount  # type: ignore[attr-defined]
        except IntegrityError:  # the target got an active job meanwhile
            return False
        if not changed:
            return False
        accounting.open_usage_of(
            session, job.id, job.user_id, target_id, job.campaign, "assigned", now
        )
        session.add(
            EventRow(
                ts=now,
                job_id=job.id,
                user_id=job.user_id,
                kind="assigned",
                message=f"assigned to {target}",
                payload={},
            )
        )
        return True

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
        """Extend the lease; returns 'abort' or 'suspend' when the job must stop (a run past
        its max_runtime_s is aborted and ends as a 'timeout' failure)."""
        now = _now()
        with self._sessions.begin() as session:
            job = self._fenced(session, job_id, epoch, caller)
            job.lease_expires_at = now + timedelta(seconds=self.lease_ttl)
            if phase and phase != job.phase:
                job.phase = phase
                job.state = "running"
                accounting.change_phase(session, job, phase, now)
                self._event(session, job, "phase", f"phase {phase}")
            started = utc(job.started_at)
            if (
                job.cancel is None
                and started is not None
                and (now - started).total_seconds() > job.max_runtime_s
            ):
                job.cancel = "timeout"
                self._event(
                    session,
                    job,
                    "abort",
                    f"ran past its max_runtime_s of {job.max_runtime_s:g} s; stopping it",
                )
            return "abort" if job.cancel == "timeout" else job.cancel

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
            if job.cancel == "timeout":
                self._close(
                    session,
                    job,
                    "failed",
                    now,
                    "timeout",
                    f"ran past its max_runtime_s of {job.max_runtime_s:g} s",
                )
                return self._view(session, job)
            if job.cancel is not None:
                state = "held" if job.cancel == "suspend" else "aborted"
                self._close(session, job, state, now, "canceled", job.cancel)
                if state == "held":
                    job.target_id = None
                return self._view(session, job)
            if record is not None:
                owner = session.get(UserRow, job.user_id)
                # In this transaction: a server killed between storing the run and closing
                # the job must leave neither (the retried finish or the next attempt stores
                # it once), never an orphaned run beside a re-run job.
                self.store.save_run(
                    record, None, owner=owner.name if owner else None, session=session
                )
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
                if job.purpose == HEALTH_PURPOSE:
                    self.farm.health_result(session, job, record.status == "succeeded", now)
                return self._view(session, job)
            self._retry_or_fail(session, job, failure_kind or "infrastructure", message or "", now)
            return self._view(session, job)

    def _announce_finished(self, campaigns: set[str]) -> None:
        """After a commit: notify owners of campaigns that just reached the end (once each)."""
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
        accounting.close_usage(session, job.id, now)
        self._event(session, job, state, f"{job.name}: {state}" + (f" ({kind})" if kind else ""))

    def _retry_or_fail(
        self, session: Session, job: JobRow, kind: str, message: str, now: datetime
    ) -> None:
        accounting.close_usage(session, job.id, now)
        if job.purpose == HEALTH_PURPOSE:
            # Whatever went wrong, the check did not pass: the target is bad.
            self.farm.health_result(session, job, False, now, f"{kind}: {message}")
            self._close(session, job, "failed", now, kind, message)
            job.target_id = None
            return
        if job.target_id is not None and kind in SUSPECT_FAILURES:
            target = session.get(TargetRow, job.target_id)
            if target is not None:
                self.farm.suspect(session, target, f"{job.id} failed ({kind}: {message})")
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
                if job.phase == "assigned":
                    # Assigned by a pass but never taken: nothing ran, so no attempt is
                    # spent and the target is not suspect; the agent is (offline sweep).
                    accounting.close_usage(session, job.id, now)
                    job.state, job.target_id, job.phase = "queued", None, None
                    job.lease_expires_at = None
                    self._event(session, job, "queued", "not picked up by its agent; re-queued")
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

    def sweep(self) -> None:
        """One pass of the sweeper: expired leases, offline agents, ended maintenance, due
        health checks."""
        self.expire_leases()
        if self.farm.sweep(self._new_job):
            self._notify()

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

    def set_priority(self, principal: Principal, ident: str, priority: int) -> int:
        """Operators: set the priority of a queued or held job or campaign (higher first)."""
        if not principal.sees_everything:
            raise ForbiddenError("setting a priority needs the role operator or admin")
        with self._sessions.begin() as session:
            count = 0
            for job in self._selected(session, principal, ident):
                if job.state in ("queued", "held"):
                    job.priority = priority
                    self._event(
                        session, job, "priority", f"priority {priority} set by {principal.name}"
                    )
                    count += 1
        self._notify()
        return count

    def start_now(self, principal: Principal, ident: str) -> int:
        """Operators: put a job or campaign ahead of every other queued run (held ones are
        resumed); it starts on the next free compatible target."""
        if not principal.sees_everything:
            raise ForbiddenError(
                "starting a job ahead of the queue needs the role operator or admin"
            )
        with self._sessions.begin() as session:
            top = session.scalar(select(func.max(JobRow.priority)).where(JobRow.state == "queued"))
            priority = max(int(top or 0), 0) + 1
            count = 0
            for job in self._selected(session, principal, ident):
                if job.state not in ("queued", "held"):
                    continue
                if job.state == "held":
                    job.state, job.cancel, job.ended_at = "queued", None, None
                    job.failure_kind = job.error = None
                job.priority, job.not_before = priority, None
                self._event(
                    session, job, "priority", f"started ahead of the queue by {principal.name}"
                )
                count += 1
        self._notify()
        return count

    def queue_view(self, principal: Principal) -> dict[str, Any]:
        """The farm's queue and running work, with each queued run's position, why it waits
        and when it should start (estimated from history); users see their own runs in
        full and others' as counts."""
        from deploybench.services.queue_view import build_queue_view

        with self._sessions() as session:
            return build_queue_view(session, _now(), self.scheduling, principal, self.farm)

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
