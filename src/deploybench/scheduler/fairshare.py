"""Fair-share dispatch policy: pure functions over a :class:`Snapshot` (no DB, no clock reads).

For each free, healthy, enabled target the next run is chosen by, in order (lowest key first):

1. operator priority (higher first);
2. the holder of the reservation active on a target the run can use;
3. users under the soft cap before users over it (the soft cap only sorts, never excludes);
4. usage in the sliding window (default 24 h) divided by the user's share weight;
5. submission order, then run id.

Runs are walked in that global rank order, and each takes, among its eligible free targets, the
one it holds a reservation on, then one it is under the soft cap on, then the one the fewest
other pending runs can use (most constrained first, labgrid's heuristic), then by name. Every
run that can use some free target when its turn comes gets one, so the plan is work-conserving.

Eligibility of run R on target T (see :func:`eligible`):

* T is enabled and has no active run, and its health is ``"good"`` (or ``"unknown"`` and R is
  a health check: an unknown target returns to service only after one passes);
* R is due (``not_before`` unset or ``<= now``), its ``wanted_target`` is unset or names T or its
  plugin, ``required_tags`` is a subset of T's tags, and ``allowed`` (target names matched by
  attribute selectors, computed by the caller) is unset or contains T;
* R's user is not over the hard cap on T (the hard cap excludes, even if T then idles);
* health checks skip the two reservation rules below (they are short and keep the farm honest);
* no reservation of another user is active on T, unless it has ``lend_idle`` set and its holder
  has no eligible run for T waiting;
* ``now + max_runtime_s`` does not cross into a future reservation of another user on T.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

DAY_S = 86400.0


@dataclass(frozen=True)
class TargetView:
    """What the policy needs to know of a target."""

    id: str
    name: str
    plugin: str
    tags: frozenset[str] = frozenset()
    enabled: bool = True
    health: str = "good"


@dataclass(frozen=True)
class RunView:
    """A queued run (or one waiting out a retry back-off until ``not_before``)."""

    id: str
    user: str
    submitted_at: datetime
    max_runtime_s: float
    priority: int = 0
    wanted_target: str | None = None
    required_tags: frozenset[str] = frozenset()
    not_before: datetime | None = None
    allowed: frozenset[str] | None = None
    health_check: bool = False


@dataclass(frozen=True)
class Reservation:
    """``user`` holds ``target`` (by name) over ``[starts_at, ends_at)``."""

    id: str
    user: str
    target: str
    starts_at: datetime
    ends_at: datetime
    lend_idle: bool = False


@dataclass(frozen=True)
class UsageEntry:
    """A ledger row: ``user`` used ``target`` over ``[started_at, ended_at)``; open if None."""

    user: str
    target: str
    started_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True)
class PolicySettings:
    """Share weights (default 1.0) and caps, as fractions of one target's window."""

    shares: Mapping[str, float] = field(default_factory=dict)
    soft_cap: float | None = None
    hard_cap: float | None = None
    window_s: float = DAY_S
    fifo: bool = False  # strict submission order after priority and reservation holder

    def share(self, user: str) -> float:
        weight = self.shares.get(user, 1.0)
        return weight if weight > 0 else 1e-9


@dataclass(frozen=True)
class Snapshot:
    """Everything :func:`plan` looks at; ``running`` maps busy target names to run ids."""

    targets: Sequence[TargetView]
    queued: Sequence[RunView]
    now: datetime
    running: Mapping[str, str] = field(default_factory=dict)
    reservations: Sequence[Reservation] = ()
    usage: Sequence[UsageEntry] = ()


@dataclass(frozen=True)
class Decision:
    """Start run ``run_id`` on the target named ``target``."""

    run_id: str
    target: str


RankKey = tuple[int, int, int, float, datetime, str]
# Health checks go before any operator priority: a target must be known good to serve.
HEALTH_CHECK_PRIORITY = 1_000_000


def usage_seconds(
    entries: Sequence[UsageEntry],
    user: str,
    now: datetime,
    window_s: float = DAY_S,
    target: str | None = None,
) -> float:
    """Seconds of ``user``'s ledger rows (on ``target``, if given) inside ``[now-window, now]``."""
    lo = now - timedelta(seconds=window_s)
    total = 0.0
    for entry in entries:
        if entry.user != user or (target is not None and entry.target != target):
            continue
        end = now if entry.ended_at is None else min(entry.ended_at, now)
        start = max(entry.started_at, lo)
        if end > start:
            total += (end - start).total_seconds()
    return total


def compatible(run: RunView, target: TargetView) -> bool:
    """``wanted_target`` names the target or its plugin (or is unset), and the tags match."""
    wanted_ok = run.wanted_target is None or run.wanted_target in (target.name, target.plugin)
    allowed_ok = run.allowed is None or target.name in run.allowed
    return wanted_ok and allowed_ok and run.required_tags <= target.tags


SERVING_HEALTH = ("good", "unknown")


def target_eligible(snapshot: Snapshot, target: TargetView) -> bool:
    """Enabled, free, and good (or unknown: free for a health check)."""
    return (
        target.enabled and target.health in SERVING_HEALTH and target.name not in snapshot.running
    )


def health_ok(run: RunView, target: TargetView) -> bool:
    """A target of unknown health takes only health checks."""
    return target.health == "good" or (target.health == "unknown" and run.health_check)


def is_due(run: RunView, now: datetime) -> bool:
    return run.not_before is None or run.not_before <= now


def over_hard_cap(snapshot: Snapshot, settings: PolicySettings, user: str, target: str) -> bool:
    if settings.hard_cap is None:
        return False
    used = usage_seconds(snapshot.usage, user, snapshot.now, settings.window_s, target)
    return used > settings.hard_cap * settings.window_s


def over_soft_cap(snapshot: Snapshot, settings: PolicySettings, user: str, target: str) -> bool:
    if settings.soft_cap is None:
        return False
    used = usage_seconds(snapshot.usage, user, snapshot.now, settings.window_s, target)
    return used > settings.soft_cap * settings.window_s


def active_reservation(snapshot: Snapshot, target: str) -> Reservation | None:
    """The reservation whose window contains ``now`` on ``target`` (earliest start if several)."""
    now = snapshot.now
    active = [
        r for r in snapshot.reservations if r.target == target and r.starts_at <= now < r.ends_at
    ]
    return min(active, key=lambda r: (r.starts_at, r.id), default=None)


def _basic_ok(snapshot: Snapshot, settings: PolicySettings, run: RunView, t: TargetView) -> bool:
    return (
        is_due(run, snapshot.now)
        and compatible(run, t)
        and health_ok(run, t)
        and (run.health_check or not over_hard_cap(snapshot, settings, run.user, t.name))
    )


def _holder_waiting(
    snapshot: Snapshot, settings: PolicySettings, holder: str, target: TargetView
) -> bool:
    return any(
        r.user == holder and _basic_ok(snapshot, settings, r, target) for r in snapshot.queued
    )


def reservation_block(
    snapshot: Snapshot, settings: PolicySettings, run: RunView, target: TargetView
) -> Reservation | None:
    """The reservation of another user that keeps ``run`` off ``target`` now, if any."""
    if run.health_check:
        return None
    now = snapshot.now
    end = now + timedelta(seconds=run.max_runtime_s)
    for res in sorted(snapshot.reservations, key=lambda r: (r.starts_at, r.id)):
        if res.target != target.name or res.user == run.user or res.ends_at <= now:
            continue
        if res.starts_at <= now:
            if res.lend_idle and not _holder_waiting(snapshot, settings, res.user, target):
                continue
            return res
        if end > res.starts_at:
            return res
    return None


def eligible(
    snapshot: Snapshot, settings: PolicySettings, run: RunView, target: TargetView
) -> bool:
    """Whether ``run`` may start on ``target`` now (see the module docstring)."""
    return (
        target_eligible(snapshot, target)
        and _basic_ok(snapshot, settings, run, target)
        and reservation_block(snapshot, settings, run, target) is None
    )


class Planner:
    """Eligibility and rank keys, computed once per snapshot.

    Same rules as :func:`eligible`, with the ledger summed once and compatibility computed
    once per placement signature, so a pass over thousands of queued runs stays cheap.
    """

    def __init__(self, snapshot: Snapshot, settings: PolicySettings) -> None:
        self.snapshot = snapshot
        self.settings = settings
        now = snapshot.now
        lo = now - timedelta(seconds=settings.window_s)
        self.used: dict[tuple[str, str], float] = {}
        self.usage: dict[str, float] = {}
        for entry in snapshot.usage:
            end = now if entry.ended_at is None else min(entry.ended_at, now)
            seconds = (end - max(entry.started_at, lo)).total_seconds()
            if seconds > 0:
                key = (entry.user, entry.target)
                self.used[key] = self.used.get(key, 0.0) + seconds
                self.usage[entry.user] = self.usage.get(entry.user, 0.0) + seconds
        self.reservations: dict[str, list[Reservation]] = {}
        for booking in sorted(snapshot.reservations, key=lambda r: (r.starts_at, r.id)):
            if booking.ends_at > now:
                self.reservations.setdefault(booking.target, []).append(booking)
        free = [t for t in snapshot.targets if target_eligible(snapshot, t)]
        self.free = sorted(free, key=lambda t: t.name)
        self._compat: dict[tuple[object, ...], list[TargetView]] = {}
        self._waiting: dict[tuple[str, str], bool] = {}
        self.holds: dict[str, str] = {}
        for t in self.free:
            res = active_reservation(snapshot, t.name)
            if res is not None:
                self.holds[t.name] = res.user
        # Per-target checks are needed only where a cap or a reservation can bite.
        self._simple = settings.hard_cap is None and not self.reservations
        self.options: dict[str, list[TargetView]] = {
            run.id: self._options(run) for run in snapshot.queued
        }
        self._ranks: dict[str, RankKey] = {}

    def _options(self, run: RunView) -> list[TargetView]:
        candidates = self.candidates(run)
        if not is_due(run, self.snapshot.now):
            return []
        if self._simple:
            return candidates  # shared list: never mutated
        return [t for t in candidates if self.eligible(run, t)]

    def candidates(self, run: RunView) -> list[TargetView]:
        """Free targets the run's placement and health allow (cached per signature)."""
        key = (run.wanted_target, run.required_tags, run.allowed, run.health_check)
        found = self._compat.get(key)
        if found is None:
            found = [t for t in self.free if compatible(run, t) and health_ok(run, t)]
            self._compat[key] = found
        return found

    def over(self, user: str, target: str, cap: float | None) -> bool:
        return cap is not None and self.used.get((user, target), 0.0) > cap * self.settings.window_s

    def basic_ok(self, run: RunView, target: TargetView) -> bool:
        return is_due(run, self.snapshot.now) and (
            run.health_check or not self.over(run.user, target.name, self.settings.hard_cap)
        )

    def holder_waiting(self, holder: str, target: TargetView) -> bool:
        key = (holder, target.name)
        if key not in self._waiting:
            self._waiting[key] = any(
                r.user == holder and target in self.candidates(r) and self.basic_ok(r, target)
                for r in self.snapshot.queued
            )
        return self._waiting[key]

    def blocked(self, run: RunView, target: TargetView) -> bool:
        if run.health_check:
            return False
        now = self.snapshot.now
        end = now + timedelta(seconds=run.max_runtime_s)
        for res in self.reservations.get(target.name, ()):
            if res.user == run.user:
                continue
            if res.starts_at <= now:
                if res.lend_idle and not self.holder_waiting(res.user, target):
                    continue
                return True
            if end > res.starts_at:
                return True
        return False

    def eligible(self, run: RunView, target: TargetView) -> bool:
        return self.basic_ok(run, target) and not self.blocked(run, target)

    def is_holder(self, run: RunView, target: TargetView) -> bool:
        return self.holds.get(target.name) == run.user

    def soft(self, run: RunView, target: TargetView) -> bool:
        return self.over(run.user, target.name, self.settings.soft_cap)

    def rank(self, run: RunView) -> RankKey:
        cached = self._ranks.get(run.id)
        if cached is not None:
            return cached
        options = self.options[run.id]
        holder = bool(self.holds) and any(self.is_holder(run, t) for t in options)
        soft = (
            self.settings.soft_cap is not None
            and bool(options)
            and all(self.soft(run, t) for t in options)
        )
        fair = (
            0.0
            if self.settings.fifo
            else self.usage.get(run.user, 0.0) / self.settings.share(run.user)
        )
        first = -run.priority - (HEALTH_CHECK_PRIORITY if run.health_check else 0)
        key = (first, 0 if holder else 1, int(soft), fair, run.submitted_at, run.id)
        self._ranks[run.id] = key
        return key

    def ordered(self) -> list[RunView]:
        return sorted(self.snapshot.queued, key=self.rank)

    def plan(
        self, prefer: frozenset[str] = frozenset(), first_preferred: bool = False
    ) -> list[Decision]:
        """Walk runs in rank order; each takes its best free eligible target. ``prefer``
        breaks the last tie (before the name) towards those targets; with
        ``first_preferred`` the walk stops at the first decision on one of them (what an
        agent's lease needs: the decisions before it are for other agents' targets)."""
        order = [r for r in self.ordered() if self.options[r.id]]
        taken: set[str] = set()
        decisions: list[Decision] = []
        # Demand per target among runs still unplaced, kept per placement signature: the
        # most constrained target is taken first, so a flexible run does not take the
        # only board a pinned run can use.
        groups: dict[int, int] = {}
        members: dict[str, list[int]] = {}
        for run in order:
            options = self.options[run.id]
            key = id(options)
            if key not in groups:
                groups[key] = 0
                for t in options:
                    members.setdefault(t.name, []).append(key)
            groups[key] += 1
        for run in order:
            options = self.options[run.id]
            groups[id(options)] -= 1
            if len(taken) == len(self.free):
                break
            free = [t for t in options if t.name not in taken]
            if not free:
                continue
            holder = bool(self.holds)
            soft = self.settings.soft_cap is not None
            best = min(
                free,
                key=lambda t: (
                    0 if holder and self.is_holder(run, t) else 1,
                    int(soft and self.soft(run, t)),
                    sum(groups[k] for k in members[t.name]),
                    0 if t.name in prefer else 1,
                    t.name,
                ),
            )
            taken.add(best.name)
            decisions.append(Decision(run.id, best.name))
            if first_preferred and best.name in prefer:
                break
        return decisions


def plan(
    snapshot: Snapshot,
    settings: PolicySettings | None = None,
    prefer: frozenset[str] = frozenset(),
    first_preferred: bool = False,
) -> list[Decision]:
    """Assign queued runs to free eligible targets; each run and target at most once (see
    :meth:`Planner.plan` for ``prefer`` and ``first_preferred``)."""
    return Planner(snapshot, settings or PolicySettings()).plan(prefer, first_preferred)


def _clock(when: datetime, now: datetime) -> str:
    return when.strftime("%H:%M" if when.date() == now.date() else "%Y-%m-%d %H:%M")


def explain(snapshot: Snapshot, settings: PolicySettings | None, run_id: str) -> str:
    """Why run ``run_id`` starts now or waits, in one line."""
    settings = settings or PolicySettings()
    now = snapshot.now
    run = next((r for r in snapshot.queued if r.id == run_id), None)
    if run is None:
        return f"run {run_id} is not queued"
    planner = Planner(snapshot, settings)
    for decision in planner.plan():
        if decision.run_id == run_id:
            return f"starts now on {decision.target}"
    if not is_due(run, now):
        assert run.not_before is not None
        return f"not before {_clock(run.not_before, now)} (retry back-off)"
    healthy = [
        t for t in snapshot.targets if t.enabled and t.health == "good" and compatible(run, t)
    ]
    if not healthy:
        return "no compatible healthy target"
    capped = [t for t in healthy if over_hard_cap(snapshot, settings, run.user, t.name)]
    if len(capped) == len(healthy):
        cap = settings.hard_cap or 0.0
        return f"{run.user} is over the hard cap ({cap:.0%} of a target's time)"
    uncapped = [t for t in healthy if t not in capped]
    free = [t for t in uncapped if target_eligible(snapshot, t)]
    if not free:
        busy = ", ".join(sorted(t.name for t in uncapped))
        return f"compatible targets busy: {busy}"
    blocks = [(t, reservation_block(snapshot, settings, run, t)) for t in free]
    if all(res is not None for _, res in blocks):
        target, res = blocks[0]
        assert res is not None
        if res.starts_at <= now:
            return f"target {target.name} reserved by {res.user} until {_clock(res.ends_at, now)}"
        return (
            f"target {target.name} reserved by {res.user} from {_clock(res.starts_at, now)}"
            f" (max runtime {run.max_runtime_s:.0f} s would cross into it)"
        )
    mine = {t.name for t in planner.options[run.id]}
    key = planner.rank(run)
    ahead = [
        r
        for r in snapshot.queued
        if r.id != run.id
        and planner.rank(r) < key
        and any(t.name in mine for t in planner.options[r.id])
    ]
    return f"behind {len(ahead)} runs with a higher rank"
