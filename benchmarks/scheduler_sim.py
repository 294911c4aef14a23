"""Scheduler simulation: the fair-share policy on a fake clock, then dispatch through the
lab's database (SQLite, and PostgreSQL when a URL is given).

1. **Policy simulation** (pure, no database, no real clock). 20 fake targets (``agent{i}/local``)
   and three users: ``flood`` submits 1,000 runs at t=0, ``steady`` a few runs every 5 minutes
   (one in five pinned to one target), ``burst`` four bursts of 40 runs. Durations
   are drawn from a seeded RNG (30-300 s); each run declares a ``max_runtime_s`` at least its
   duration. A discrete-event loop calls :func:`deploybench.scheduler.fairshare.plan` at every
   event (runs finishing, submissions; simultaneous ones together), starts what it decides,
   and keeps the usage ledger the policy reads (rows opened at start, closed at finish, dropped
   once they ended more than ``window_s`` ago).

   How to read it: over the *contended* time (some run was waiting), each user's share of the
   busy target time beside the share its weight gives it among the users that had work
   waiting at that moment. A user that is always waiting (flood) should get about its
   expected share or more; one whose demand is below its share (steady) gets less, because it
   is served as it arrives (its waits stay short) and the rest goes to the others. The policy
   balances usage over the window (24 h), not instantaneous shares, so a user who arrives
   after another has used the farm for hours (burst) is favoured until usage per weight
   evens out: its ratio is above 1 and its maximum wait short. ``idle while waiting`` (target
   seconds a free target spent idle while a run it could take was waiting) must be 0: the
   plan is work-conserving; the script exits 1 otherwise. ``plan calls/s`` is the pure
   policy's speed at this queue length.

2. **Dispatch through the database** with :class:`deploybench.services.lab.LabService`: 200
   targets (200 agents with one ``local`` target each), 10,000 queued jobs from three users
   (flood first, then steady, then burst). A first campaign per user goes through
   ``LabService.submit``; the rest are bulk-inserted as copies of those rows (submit validates
   every definition and costs tens of ms each; ``--via-submit`` sets how many go through it).
   The lab dispatches in *passes* (``LabService.dispatch``): one transaction plans over the
   whole farm and assigns a queued job to every free eligible target; an agent's ``lease``
   first picks up a job already assigned to one of its targets, else runs a pass itself.

   - **Pass throughput** (what the goal is judged on): every target free, one
     ``dispatch()`` call is timed (its decisions: what it returns); the agents then pick
     up their jobs (``lease``, timed apart as *hand-over*, not part of the goal), every job
     is finished (failure kind ``model``: final, never re-queued), and again, ``--rounds``
     times. decisions/s = all decisions / the time of those passes.
   - **Steady state**, one decision per pass: one job is finished and its target's agent
     leases again (that lease finds nothing assigned and runs a pass over the farm, where
     only its target is free), ``--decisions`` times (or until the leases took
     ``--budget-s``). Per-decision latency (the whole lease; the pass inside it apart) and
     the rate it implies are printed, not judged. ``steady-state decisions by user`` shows
     whom the dispatcher served while all three users had work queued.

   Goal: >= 500 decisions/s on SQLite, pass throughput. ``finish`` is timed but not counted
   in any rate.

Exit status 1 when a target idled while a run waited, plan() made an invalid decision, a pass
left a free target idle or a lease found no job while jobs were queued, or the goal was
missed (the goal is not judged with ``--quick``, whose sizes are for the test).

    python benchmarks/scheduler_sim.py [--quick] [--shares flood=1,steady=2] [--soft-cap F]
        [--pg-url postgresql+psycopg://postgres@host/postgres] [--only sim|db]
        [--rounds N] [--decisions N]

PostgreSQL: ``--pg-url`` or ``DEPLOYBENCH_TEST_POSTGRES_URL`` (an admin URL, as for the
tests); a fresh database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from deploybench.scheduler.fairshare import (
    DAY_S,
    PolicySettings,
    RunView,
    Snapshot,
    TargetView,
    UsageEntry,
    eligible,
    plan,
)

PG_ENV = "DEPLOYBENCH_TEST_POSTGRES_URL"
GOAL_PER_S = 500.0
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
USERS = ("flood", "steady", "burst")
CAMPAIGN = 100  # jobs per campaign in the database part


# -- part 1: the pure policy on a fake clock ---------------------------------------------------


@dataclass
class SimRun:
    """A run of the simulation: what the policy sees, its true duration, when it started."""

    view: RunView
    duration: float
    submit_s: float
    start_s: float | None = None


@dataclass
class SimResult:
    """Figures of one simulation."""

    runs: dict[str, int] = field(default_factory=dict)
    busy_contended: dict[str, float] = field(default_factory=dict)  # target-seconds
    expected: dict[str, float] = field(default_factory=dict)  # seconds x expected fraction
    waiting: dict[str, float] = field(default_factory=dict)  # contended seconds with work queued
    waits: dict[str, list[float]] = field(default_factory=dict)
    contended_s: float = 0.0
    idle_while_waiting: float = 0.0
    invalid: list[str] = field(default_factory=list)
    makespan: float = 0.0
    work: float = 0.0
    plan_times: list[float] = field(default_factory=list)
    max_queue: int = 0


def workload(n_flood: int, n_targets: int, seed: int) -> list[SimRun]:
    """flood: ``n_flood`` runs at t=0; steady: 3 runs every 300 s; burst: 4 bursts of
    ``n_flood / 25`` runs; steady and burst submit while flood's backlog lasts."""
    rnd = random.Random(seed)
    runs: list[SimRun] = []

    def add(user: str, at: float, wanted: str | None = "local") -> None:
        duration = float(rnd.randint(30, 300))
        declared = float(-(-duration * rnd.uniform(1.0, 2.0) // 10) * 10)
        view = RunView(
            id=f"{user}-{len(runs):05d}",
            user=user,
            # Distinct submission times keep FIFO among runs submitted at the same second.
            submitted_at=T0 + timedelta(seconds=at, microseconds=len(runs)),
            max_runtime_s=max(declared, duration),
            wanted_target=wanted,
        )
        runs.append(SimRun(view, duration, at))

    for _ in range(n_flood):
        add("flood", 0.0)
    # Flood's backlog alone would keep every target busy for about this long.
    horizon = 0.8 * n_flood * 165.0 / n_targets
    at = 0.0
    while at < horizon:
        for _ in range(3):
            pinned = rnd.random() < 0.2
            add("steady", at, f"agent{rnd.randrange(n_targets)}/local" if pinned else "local")
        at += 300.0
    for b in range(4):
        at = (b + 0.5) * horizon / 4
        for _ in range(max(1, n_flood // 25)):
            add("burst", round(at))
    return sorted(runs, key=lambda r: (r.submit_s, r.view.submitted_at))


def simulate(n_flood: int, n_targets: int, seed: int, settings: PolicySettings) -> SimResult:
    """Run the discrete-event simulation; every plan() call is timed."""
    targets = [
        TargetView(id=f"t{i}", name=f"agent{i}/local", plugin="local") for i in range(n_targets)
    ]
    by_name = {t.name: t for t in targets}
    arrivals = workload(n_flood, n_targets, seed)
    result = SimResult()
    for user in USERS:
        result.runs[user] = sum(1 for r in arrivals if r.view.user == user)
        for table in (result.busy_contended, result.expected, result.waiting):
            table[user] = 0.0
        result.waits[user] = []
    result.work = sum(r.duration for r in arrivals)

    queued: dict[str, SimRun] = {}
    running: dict[str, SimRun] = {}  # target name -> run
    finishes: list[tuple[float, str]] = []  # (end second, target name)
    closed: list[UsageEntry] = []
    open_rows: dict[str, UsageEntry] = {}
    next_arrival = 0
    now = 0.0
    # State between two events (after the plan of the last one).
    waiting_users: set[str] = set()
    idle_eligible = 0

    def at(second: float) -> datetime:
        return T0 + timedelta(seconds=second)

    def snapshot(second: float) -> Snapshot:
        return Snapshot(
            targets=targets,
            queued=[r.view for r in queued.values()],
            now=at(second),
            running={name: run.view.id for name, run in running.items()},
            usage=[*closed, *open_rows.values()],
        )

    while next_arrival < len(arrivals) or finishes:
        upcoming = [finishes[0][0]] if finishes else []
        if next_arrival < len(arrivals):
            upcoming.append(arrivals[next_arrival].submit_s)
        event = min(upcoming)
        # Account for the interval [now, event): nothing changes inside it.
        dt = event - now
        if dt > 0 and waiting_users:
            result.contended_s += dt
            for run in running.values():
                result.busy_contended[run.view.user] += dt
            total_weight = sum(settings.share(u) for u in waiting_users)
            for user in waiting_users:
                result.waiting[user] += dt
                result.expected[user] += dt * settings.share(user) / total_weight
        result.idle_while_waiting += dt * idle_eligible
        now = event

        while finishes and finishes[0][0] <= now:
            _, name = heapq.heappop(finishes)
            del running[name]
            row = open_rows.pop(name)
            closed.append(UsageEntry(row.user, row.target, row.started_at, at(now)))
        while next_arrival < len(arrivals) and arrivals[next_arrival].submit_s <= now:
            run = arrivals[next_arrival]
            queued[run.view.id] = run
            next_arrival += 1
        # Keep the ledger bounded: what ended before the window no longer counts.
        horizon = at(now - settings.window_s)
        if closed and closed[0].ended_at is not None and closed[0].ended_at < horizon:
            closed = [e for e in closed if e.ended_at is None or e.ended_at >= horizon]
        result.max_queue = max(result.max_queue, len(queued))

        snap = snapshot(now)
        started = time.perf_counter()
        decisions = plan(snap, settings)
        result.plan_times.append(time.perf_counter() - started)
        for decision in decisions:
            chosen = queued.pop(decision.run_id, None)
            if chosen is None or decision.target in running or decision.target not in by_name:
                result.invalid.append(f"t={now:.0f}: {decision}")
                continue
            chosen.start_s = now
            running[decision.target] = chosen
            open_rows[decision.target] = UsageEntry(chosen.view.user, decision.target, at(now))
            heapq.heappush(finishes, (now + chosen.duration, decision.target))
            result.waits[chosen.view.user].append(now - chosen.submit_s)
            result.makespan = max(result.makespan, now + chosen.duration)

        # The state until the next event: who waits, and free targets a waiting run could use.
        after = snapshot(now)
        waiting_users = {r.view.user for r in queued.values()}
        idle_eligible = sum(
            1
            for t in targets
            if t.name not in running
            and any(eligible(after, settings, r.view, t) for r in queued.values())
        )
    return result


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def report_simulation(args: argparse.Namespace, settings: PolicySettings) -> bool:
    """Simulate, print; False when the plan idled a target while a run waited for it."""
    wall = time.perf_counter()
    result = simulate(args.flood, args.targets, args.seed, settings)
    wall = time.perf_counter() - wall
    shares = ", ".join(f"{u}={settings.share(u):g}" for u in USERS) if settings.shares else "equal"
    soft = "none" if settings.soft_cap is None else f"{settings.soft_cap:g}"
    total = sum(result.runs.values())
    counts = ", ".join(f"{u} {n}" for u, n in result.runs.items())
    print("Policy simulation (fairshare.plan on a fake clock)")
    print(
        f"  {args.targets} targets, {total} runs ({counts}), seed {args.seed}; shares {shares}, "
        f"soft cap {soft}, window {_duration(settings.window_s)}"
    )
    busy = sum(result.busy_contended.values()) or 1.0
    contended = result.contended_s or 1.0
    print(
        f"  {'user':<8}{'runs':>6}{'waiting':>10}{'share':>9}{'expected':>10}{'ratio':>8}"
        f"{'max wait':>11}{'mean wait':>11}"
    )
    for user in USERS:
        share = result.busy_contended[user] / busy
        expected = result.expected[user] / contended
        ratio = f"{share / expected:.2f}" if expected > 0 else "-"
        waits = result.waits[user]
        print(
            f"  {user:<8}{result.runs[user]:>6}{result.waiting[user] / contended:>9.0%}"
            f"{share:>9.1%}{expected:>10.1%}{ratio:>8}"
            f"{_duration(max(waits, default=0.0)):>11}"
            f"{_duration(statistics.fmean(waits) if waits else 0.0):>11}"
        )
    print(
        "  (share: of the busy target time while contended; expected: weight / weights of the "
        "users waiting then;\n   waiting: part of the contended time the user had work queued)"
    )
    bound = result.work / args.targets
    print(
        f"  contended: {_duration(result.contended_s)} of the makespan; "
        f"makespan {_duration(result.makespan)} ({result.makespan:.0f} s), "
        f"{result.makespan / bound:.3f} x the bound total work / targets ({bound:.0f} s)"
    )
    ok = result.idle_while_waiting == 0 and not result.invalid
    verdict = "ok" if result.idle_while_waiting == 0 else "FAIL (must be 0)"
    print(f"  idle while waiting: {result.idle_while_waiting:.0f} target-s {verdict}")
    if result.invalid:
        print(f"  INVALID decisions ({len(result.invalid)}): {'; '.join(result.invalid[:5])}")
    calls = len(result.plan_times)
    spent = sum(result.plan_times)
    print(
        f"  plan(): {calls} calls in {spent:.2f} s, {calls / spent:.0f} calls/s "
        f"(median {statistics.median(result.plan_times) * 1e3:.2f} ms, "
        f"max {max(result.plan_times) * 1e3:.0f} ms; queue up to {result.max_queue} runs); "
        f"simulation {wall:.1f} s"
    )
    return ok


# -- part 2: dispatch through LabService -------------------------------------------------------


@dataclass
class DispatchResult:
    """Timed calls of one backend."""

    backend: str
    passes: list[tuple[float, int]] = field(default_factory=list)  # full-farm: (s, decisions)
    unassigned: int = 0  # free targets a full-farm pass left idle while jobs were queued
    handover: list[float] = field(default_factory=list)  # leases picking up assigned jobs
    handover_misses: int = 0  # of those, leases that got no job
    handover_passes: int = 0  # of those, leases that found nothing assigned and ran a pass
    steady: list[float] = field(default_factory=list)  # leases that ran a one-decision pass
    steady_pass: list[float] = field(default_factory=list)  # the dispatch() inside each
    steady_misses: int = 0
    finish: list[float] = field(default_factory=list)
    by_user: dict[str, int] = field(default_factory=dict)
    setup_s: float = 0.0
    stopped: bool = False  # the steady state ran out of --budget-s
    submitted: int = 0
    inserted: int = 0
    submit_per_s: float = 0.0

    @property
    def decisions(self) -> int:
        return sum(n for _, n in self.passes)

    @property
    def pass_s(self) -> float:
        return sum(s for s, _ in self.passes)

    @property
    def pass_rate(self) -> float:
        """Decisions per second of the full-farm passes (what the goal is judged on)."""
        return self.decisions / self.pass_s if self.pass_s else 0.0

    @property
    def misses(self) -> int:
        return self.unassigned + self.handover_misses + self.steady_misses

    @staticmethod
    def rate(samples: Sequence[float]) -> float:
        return len(samples) / sum(samples) if samples else 0.0


def _definition(name: str, model: str, dataset: str) -> dict[str, Any]:
    """A small valid experiment on uploaded inputs (no zoo build at submit)."""
    return {
        "name": name,
        "problem": {
            "model": {"path": "model.onnx", "sha256": model},
            "dataset": {"path": "data.npz", "sha256": dataset},
            "task": "classification",
        },
        "toolchain": {"name": "onnxruntime"},
        "target": {"name": "local"},
    }


@contextmanager
def _postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty database next to ``admin_url``'s; dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"deploybench_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _copies(engine: Engine, model_id: str, user: str, count: int) -> list[dict[str, Any]]:
    """Insert ``count`` copies of job ``model_id`` (as ``LabService.submit`` wrote it: every
    column, whatever the schema has), submitted after it, in campaigns of :data:`CAMPAIGN` so
    that finishing a job never reads a huge campaign. Returns the rows inserted."""
    from sqlalchemy import insert, select

    from deploybench.store.lab_models import JobRow

    table = JobRow.metadata.tables[JobRow.__tablename__]
    with engine.begin() as connection:
        model = dict(connection.execute(select(table).where(table.c.id == model_id)).one()._mapping)
        first = int(model["name"].rsplit("-", 1)[1]) + 1
        base = datetime.now(UTC)
        copies: list[dict[str, Any]] = []
        campaign = ""
        for k in range(count):
            if k % CAMPAIGN == 0:
                campaign = uuid.uuid4().hex[:12]
            name = f"{user}-{first + k}"
            copies.append(
                {
                    **model,
                    "id": f"job-{uuid.uuid4().hex[:16]}",
                    "campaign": campaign,
                    "name": name,
                    "definition": {**model["definition"], "name": name},
                    "submitted_at": base + timedelta(microseconds=k),
                }
            )
        for start in range(0, len(copies), 1000):
            connection.execute(insert(table), copies[start : start + 1000])
    return copies


def dispatch(url: str, backend: str, args: argparse.Namespace, data_dir: Path) -> DispatchResult:
    """Set up agents and queued jobs on ``url``; time full-farm passes, the hand-over of
    their jobs, then the steady state (one target frees, its agent's lease runs a pass)."""
    from sqlalchemy.orm import sessionmaker

    from deploybench.services.auth import AuthService, Principal, Role
    from deploybench.services.lab import LabService
    from deploybench.store.artifacts import FilesystemArtifactStore
    from deploybench.store.sql import SqlResultStore

    inner: list[tuple[float, int]] = []  # every pass, those lease() runs included

    class TimedLab(LabService):
        """Records the time and the decisions of every pass."""

        def dispatch(self, asking_agent: int | None = None, offered: set[str] | None = None) -> int:
            began = time.perf_counter()
            assigned = super().dispatch(asking_agent, offered)
            inner.append((time.perf_counter() - began, assigned))
            return assigned

    result = DispatchResult(backend)
    setup = time.perf_counter()
    store = SqlResultStore(url, FilesystemArtifactStore(data_dir / "artifacts"))
    try:
        # Placeholder bytes stand for models: this measures scheduling, not the submit-time
        # compatibility checks (which would refuse them).
        service = TimedLab(store, lease_ttl=3600.0, max_attempts=1, check_compatibility=False)
        auth = AuthService(sessionmaker(store.engine, expire_on_commit=False))
        agent_id = auth.add_user("bench-agents", Role.AGENT)
        agents = Principal(agent_id, "bench-agents", Role.AGENT)
        users = {u: Principal(auth.add_user(u, Role.USER), u, Role.USER) for u in USERS}
        agent_names = [f"agent{i:03d}" for i in range(args.db_targets)]
        target_of: dict[str, str] = {}
        for name in agent_names:
            (target,) = service.register_agent(agents, name, "bench", [{"name": "local"}])
            target_of[name] = target

        model = store.artifacts.write_bytes(b"scheduler bench model").sha256
        dataset = store.artifacts.write_bytes(b"scheduler bench dataset").sha256
        # flood 60 %, then steady 20 %, then burst 20 % (flood submitted first).
        counts = {
            "flood": args.queued - 2 * (args.queued // 5),
            "steady": args.queued // 5,
            "burst": args.queued // 5,
        }
        submit_s = 0.0
        user_of_job: dict[str, str] = {}
        for user in USERS:
            if not counts[user]:
                continue
            via_submit = min(counts[user], max(1, args.via_submit))
            ids: list[str] = []
            for start in range(0, via_submit, CAMPAIGN):
                batch = [
                    _definition(f"{user}-{i}", model, dataset)
                    for i in range(start, min(via_submit, start + CAMPAIGN))
                ]
                began = time.perf_counter()
                ids += service.submit(users[user], batch)[1]
                submit_s += time.perf_counter() - began
            result.submitted += len(ids)
            user_of_job.update(dict.fromkeys(ids, user))
            copies = _copies(store.engine, ids[-1], user, counts[user] - via_submit)
            user_of_job.update(dict.fromkeys((c["id"] for c in copies), user))
            result.inserted += len(copies)
        result.submit_per_s = result.submitted / submit_s if submit_s else 0.0
        result.setup_s = time.perf_counter() - setup
        remaining = sum(counts.values())  # jobs still queued

        def finish(job_id: str, epoch: int) -> None:
            # Failure kind 'model' is final: the job is never re-queued.
            began = time.perf_counter()
            service.finish(job_id, epoch, None, failure_kind="model", message="bench")
            result.finish.append(time.perf_counter() - began)

        held: dict[str, tuple[str, int]] = {}  # agent -> (job id, epoch), oldest first
        for _ in range(args.rounds):
            for job_id, epoch in held.values():  # free the whole farm
                finish(job_id, epoch)
            held.clear()
            began = time.perf_counter()
            decided = service.dispatch()
            result.passes.append((time.perf_counter() - began, decided))
            result.unassigned += max(0, min(len(agent_names), remaining) - decided)
            remaining -= decided
            for name in agent_names:
                ran = len(inner)
                began = time.perf_counter()
                got = service.lease(agents, name, [target_of[name]])
                result.handover.append(time.perf_counter() - began)
                if len(inner) > ran:
                    result.handover_passes += 1
                    remaining -= sum(n for _, n in inner[ran:])
                if got is None:
                    result.handover_misses += int(remaining > 0)
                else:
                    held[name] = (got.job_id, got.epoch)

        for _ in range(args.decisions):
            if not held:
                break
            if sum(result.steady) > args.budget_s:
                result.stopped = True
                break
            name = next(iter(held))
            finish(*held.pop(name))
            ran = len(inner)
            began = time.perf_counter()
            got = service.lease(agents, name, [target_of[name]])
            result.steady.append(time.perf_counter() - began)
            result.steady_pass += [s for s, _ in inner[ran:]]
            remaining -= sum(n for _, n in inner[ran:])
            if got is None:
                result.steady_misses += int(remaining > 0)
            else:
                held[name] = (got.job_id, got.epoch)
                user = user_of_job.get(got.job_id, "?")
                result.by_user[user] = result.by_user.get(user, 0) + 1
    finally:
        store.close()
    return result


def _ms(samples: Sequence[float], q: float) -> str:
    ordered = sorted(samples)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3:.1f}"


def _report_backend(r: DispatchResult, args: argparse.Namespace) -> None:
    print(f"  {r.backend} (setup {r.setup_s:.1f} s)")
    per_pass = [s for s, _ in r.passes]
    sizes = sorted({n for _, n in r.passes})
    print(
        f"    pass throughput: {r.decisions} decisions in {len(r.passes)} passes over the whole "
        f"free farm, {r.pass_s:.2f} s: {r.pass_rate:.0f} decisions/s"
    )
    if per_pass:
        print(
            f"      per pass: {'/'.join(str(n) for n in sizes)} decisions, "
            f"{statistics.median(per_pass) * 1e3:.0f} ms median "
            f"(min {min(per_pass) * 1e3:.0f}, max {max(per_pass) * 1e3:.0f} ms)"
        )
    if r.handover:
        print(
            f"    hand-over: {len(r.handover)} leases picking up assigned jobs in "
            f"{sum(r.handover):.2f} s: {r.rate(r.handover):.0f} leases/s "
            f"(p50 {_ms(r.handover, 0.5)} ms, p95 {_ms(r.handover, 0.95)} ms; not part of the goal)"
        )
    if r.steady:
        print(
            "    steady state, one decision per pass (one target frees; its agent's lease runs "
            f"the pass):\n      {len(r.steady)} leases in {sum(r.steady):.1f} s; per decision "
            f"p50 {_ms(r.steady, 0.5)} ms, p95 {_ms(r.steady, 0.95)} ms "
            f"(the pass inside: p50 {_ms(r.steady_pass or [0.0], 0.5)} ms) "
            f"-> {r.rate(r.steady):.0f} decisions/s (not judged)"
            + (f"; stopped early: leases took over {args.budget_s:g} s" if r.stopped else "")
        )
    if r.finish:
        print(
            f"    finish: {len(r.finish)} calls, p50 {_ms(r.finish, 0.5)} ms, "
            f"p95 {_ms(r.finish, 0.95)} ms (not timed into any rate)"
        )
    total = sum(r.by_user.values()) or 1
    mix = ", ".join(f"{u} {r.by_user.get(u, 0) / total:.0%}" for u in USERS)
    print(f"    steady-state decisions by user: {mix}")
    if r.handover_passes:
        print(f"    note: {r.handover_passes} hand-over leases found nothing assigned, ran a pass")
    if r.misses:
        print(
            f"    MISSED: {r.unassigned} free targets left idle by full-farm passes, "
            f"{r.handover_misses} hand-over and {r.steady_misses} steady-state leases found no "
            "job, although jobs were queued"
        )


def report_dispatch(args: argparse.Namespace) -> bool:
    """Run the database part on SQLite (and PostgreSQL); False when the goal is missed or a
    free target got no job while jobs were queued."""
    print()
    print(
        f"Dispatch through LabService ({args.db_targets} targets on {args.db_targets} agents, "
        f"{args.queued} queued jobs from {len(USERS)} users)"
    )
    results: list[DispatchResult] = []
    runs: list[tuple[str, Callable[[Path], DispatchResult]]] = [
        ("SQLite", lambda d: dispatch(f"sqlite:///{d / 'lab.db'}", "SQLite", args, d))
    ]
    pg_url = args.pg_url or os.environ.get(PG_ENV)

    def on_postgres(d: Path) -> DispatchResult:
        assert pg_url is not None
        with _postgres_database(pg_url) as url:
            return dispatch(url, "PostgreSQL", args, d)

    if pg_url:
        runs.append(("PostgreSQL", on_postgres))
    for _, run in runs:
        with tempfile.TemporaryDirectory(prefix="scheduler-sim-") as folder:
            results.append(run(Path(folder)))
    first = results[0]
    print(
        f"  jobs: {first.submitted} through LabService.submit "
        f"({first.submit_per_s:.0f} definitions/s), {first.inserted} bulk-inserted as copies "
        "of those rows"
    )
    for r in results:
        _report_backend(r, args)
    if not pg_url:
        print("  PostgreSQL: skipped (no URL; pass --pg-url)")
    rate = results[0].pass_rate
    met = rate >= GOAL_PER_S
    judged = "" if not args.quick else " (--quick: informational, not judged)"
    print(
        f"  goal: >= {GOAL_PER_S:.0f}/s on SQLite (pass throughput): "
        f"{'PASS' if met else 'FAIL'} ({rate:.0f}/s){judged}"
    )
    missed = any(r.misses for r in results)
    return (met or args.quick) and not missed


# -- command line -------------------------------------------------------------------------------


def _shares(text: str) -> dict[str, float]:
    shares: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        user, sep, weight = item.partition("=")
        try:
            shares[user.strip()] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not user.strip():
            raise argparse.ArgumentTypeError(f"'{item}': expected user=weight, e.g. flood=1")
    return shares


def main() -> int:
    """Simulate, dispatch, print; exit 1 when a check or the goal fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (for the test)")
    parser.add_argument("--only", choices=("sim", "db"), help="run one part")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shares", type=_shares, default={}, help="e.g. flood=1,steady=2")
    parser.add_argument("--soft-cap", type=float, help="fraction of one target's window")
    parser.add_argument("--window-s", type=float, default=DAY_S, help="usage window (s)")
    parser.add_argument("--flood", type=int, help="runs flood submits at t=0 (1000)")
    parser.add_argument("--targets", type=int, help="simulated targets (20)")
    parser.add_argument("--queued", type=int, help="queued jobs in the database (10000)")
    parser.add_argument("--db-targets", type=int, help="targets in the database (200)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="full-farm passes, all targets free (5)"
    )
    parser.add_argument("--decisions", type=int, help="steady-state leases (1000)")
    parser.add_argument(
        "--via-submit", type=int, help="jobs per user through LabService.submit (100)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=120.0,
        help="stop the steady state once its leases took this long in all (per backend)",
    )
    parser.add_argument("--pg-url", help=f"PostgreSQL admin URL (default: ${PG_ENV})")
    args = parser.parse_args()
    sizes = (
        {"flood": 200, "targets": 20, "queued": 500, "db_targets": 20, "decisions": 100}
        if args.quick
        else {"flood": 1000, "targets": 20, "queued": 10000, "db_targets": 200, "decisions": 1000}
    )
    sizes["via_submit"] = 10 if args.quick else 100
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    # Nothing may land in the user's data folder (the store writes artifacts, plugins cache).
    os.environ.setdefault("DEPLOYBENCH_HOME", tempfile.mkdtemp(prefix="scheduler-sim-home-"))

    ok = True
    if args.only in (None, "sim"):
        settings = PolicySettings(
            shares=args.shares, soft_cap=args.soft_cap, window_s=args.window_s
        )
        ok = report_simulation(args, settings) and ok
    if args.only in (None, "db"):
        ok = report_dispatch(args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
