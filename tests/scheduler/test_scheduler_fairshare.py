"""Fair-share policy: hand cases per ranking rule, reservations, and Hypothesis properties."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from deploybench.scheduler.fairshare import (
    Decision,
    PolicySettings,
    Reservation,
    RunView,
    Snapshot,
    TargetView,
    UsageEntry,
    compatible,
    eligible,
    explain,
    plan,
    target_eligible,
    usage_seconds,
)

T0 = datetime(2026, 1, 5, 12, 0, 0)
H = timedelta(hours=1)
M = timedelta(minutes=1)
T = TypeVar("T")


def tgt(name: str, plugin: str = "local", **kw: object) -> TargetView:
    return TargetView(id=f"id-{name}", name=name, plugin=plugin, **kw)  # type: ignore[arg-type]


def run(rid: str, user: str, minute: int = 0, **kw: object) -> RunView:
    kw.setdefault("max_runtime_s", 600.0)
    return RunView(id=rid, user=user, submitted_at=T0 - H + minute * M, **kw)  # type: ignore[arg-type]


def snap(targets: list[TargetView], queued: list[RunView], **kw: object) -> Snapshot:
    return Snapshot(targets=targets, queued=queued, now=T0, **kw)  # type: ignore[arg-type]


def first(s: Snapshot, ps: PolicySettings | None = None) -> str:
    decisions = plan(s, ps)
    assert len(decisions) == 1
    return decisions[0].run_id


# --- usage accounting ------------------------------------------------------------------------


def test_usage_seconds_sliding_window_and_per_target() -> None:
    entries = [
        UsageEntry("a", "t1", T0 - 25 * H, T0 - 23 * H),  # 1 h inside the window
        UsageEntry("a", "t2", T0 - 2 * H, T0 - H),
        UsageEntry("a", "t1", T0 - 30 * M, None),  # open: counts up to now
        UsageEntry("b", "t1", T0 - 2 * H, T0),
        UsageEntry("a", "t1", T0 - 48 * H, T0 - 30 * H),  # out of the window
    ]
    assert usage_seconds(entries, "a", T0) == 3600 + 3600 + 1800
    assert usage_seconds(entries, "a", T0, target="t1") == 3600 + 1800
    assert usage_seconds(entries, "a", T0, window_s=3600) == 1800
    assert usage_seconds(entries, "c", T0) == 0


# --- ranking rules ---------------------------------------------------------------------------


def test_operator_priority_first() -> None:
    s = snap([tgt("t1")], [run("old", "a", 0), run("urgent", "b", 30, priority=5)])
    assert first(s) == "urgent"


def test_reservation_holder_before_others() -> None:
    res = Reservation("r1", "bob", "t1", T0 - H, T0 + H, lend_idle=True)
    s = snap([tgt("t1")], [run("a1", "alice", 0), run("b1", "bob", 30)], reservations=[res])
    assert first(s) == "b1"


def test_under_soft_cap_before_over() -> None:
    usage = [UsageEntry("a", "t1", T0 - 10 * H, T0 - 2 * H), UsageEntry("b", "t2", T0 - 9 * H, T0)]
    ps = PolicySettings(soft_cap=0.25)  # 6 h of t1; a used 8 h of t1, b used 9 h elsewhere
    s = snap([tgt("t1")], [run("a1", "a", 0), run("b1", "b", 30)], usage=usage)
    assert plan(s, ps) == [Decision("b1", "t1")]
    # Without the soft cap, fair share alone prefers a (8 h < 9 h).
    assert plan(s, PolicySettings()) == [Decision("a1", "t1")]


def test_soft_cap_is_work_conserving() -> None:
    usage = [UsageEntry("a", "t1", T0 - 20 * H, T0)]
    s = snap([tgt("t1")], [run("a1", "a")], usage=usage)
    assert plan(s, PolicySettings(soft_cap=0.1)) == [Decision("a1", "t1")]


def test_hard_cap_excludes_even_if_target_idles() -> None:
    usage = [UsageEntry("a", "t1", T0 - 20 * H, T0)]
    s = snap([tgt("t1")], [run("a1", "a")], usage=usage)
    ps = PolicySettings(hard_cap=0.5)
    assert plan(s, ps) == []
    assert "hard cap" in explain(s, ps, "a1")


def test_least_weighted_usage_first() -> None:
    usage = [UsageEntry("a", "x", T0 - 3 * H, T0 - H), UsageEntry("b", "x", T0 - 4 * H, T0 - H)]
    s = snap([tgt("t1")], [run("a1", "a", 30), run("b1", "b", 0)], usage=usage)
    assert first(s) == "a1"  # 2 h < 3 h
    assert first(s, PolicySettings(shares={"b": 2.0})) == "b1"  # 2 h > 1.5 h


def test_submission_order_then_id() -> None:
    s = snap([tgt("t1")], [run("late", "a", 10), run("early", "b", 5)])
    assert first(s) == "early"
    s = snap([tgt("t1")], [run("z", "a", 5), run("y", "b", 5)])
    assert first(s) == "y"


def test_not_before_waits_out_back_off() -> None:
    r = run("a1", "a", 0, not_before=T0 + 5 * M)
    s = snap([tgt("t1")], [r, run("b1", "b", 30)])
    assert first(s) == "b1"
    assert explain(s, None, "a1") == "not before 12:05 (retry back-off)"


def test_target_eligibility_and_compatibility() -> None:
    targets = [
        tgt("off", enabled=False),
        tgt("sick", health="bad"),
        tgt("busy"),
        tgt("gpu", "cuda", tags=frozenset({"gpu"})),
        tgt("cpu", "local"),
    ]
    queued = [
        run("g", "a", 0, required_tags=frozenset({"gpu"})),
        run("c", "b", 1, wanted_target="local"),
        run("n", "c", 2, wanted_target="sick"),
    ]
    s = snap(targets, queued, running={"busy": "other"})
    assert sorted(plan(s), key=lambda d: d.run_id) == [Decision("c", "cpu"), Decision("g", "gpu")]
    assert explain(s, None, "n") == "no compatible healthy target"
    assert explain(s, None, "g") == "starts now on gpu"


def test_most_constrained_target_first() -> None:
    # "any" is ranked first but must not take the only board the pinned run can use.
    s = snap(
        [tgt("a1"), tgt("a2")], [run("any", "u", 0), run("pinned", "v", 5, wanted_target="a1")]
    )
    assert sorted(plan(s), key=lambda d: d.run_id) == [
        Decision("any", "a2"),
        Decision("pinned", "a1"),
    ]


def test_explain_behind_higher_rank() -> None:
    s = snap([tgt("t1")], [run(f"r{i}", "a", i) for i in range(5)])
    assert first(s) == "r0"
    assert explain(s, None, "r3") == "behind 3 runs with a higher rank"
    busy = snap([tgt("t1")], [run("r0", "a")], running={"t1": "x"})
    assert explain(busy, None, "r0") == "compatible targets busy: t1"


# --- reservations ----------------------------------------------------------------------------


def test_reservation_holder_only_during_window() -> None:
    res = Reservation("r1", "bob", "t1", T0 - H, T0 + 2 * H)
    s = snap([tgt("t1")], [run("a1", "alice")], reservations=[res])
    assert plan(s) == []
    assert explain(s, None, "a1") == "target t1 reserved by bob until 14:00"
    s2 = snap([tgt("t1")], [run("a1", "alice"), run("b1", "bob", 30)], reservations=[res])
    assert plan(s2) == [Decision("b1", "t1")]


def test_max_runtime_crossing_into_window_blocks_others() -> None:
    res = Reservation("r1", "bob", "t1", T0 + 30 * M, T0 + 2 * H)
    long = run("long", "alice", 0, max_runtime_s=3600.0)
    short = run("short", "alice", 5, max_runtime_s=1200.0)
    s = snap([tgt("t1")], [long, short], reservations=[res])
    assert plan(s) == [Decision("short", "t1")]  # backfill before the window
    s = snap([tgt("t1")], [long], reservations=[res])
    assert plan(s) == []
    assert "would cross" in explain(s, None, "long")
    # The holder's own long run may start.
    s = snap([tgt("t1")], [run("b1", "bob", max_runtime_s=7200.0)], reservations=[res])
    assert plan(s) == [Decision("b1", "t1")]


def test_lend_idle_lets_others_use_idle_reservation() -> None:
    lend = Reservation("r1", "bob", "t1", T0 - H, T0 + H, lend_idle=True)
    keep = Reservation("r1", "bob", "t1", T0 - H, T0 + H, lend_idle=False)
    alone = [run("a1", "alice")]
    assert plan(snap([tgt("t1")], alone, reservations=[lend])) == [Decision("a1", "t1")]
    assert plan(snap([tgt("t1")], alone, reservations=[keep])) == []
    both = [run("a1", "alice"), run("b1", "bob", 30)]
    assert plan(snap([tgt("t1")], both, reservations=[lend])) == [Decision("b1", "t1")]


def test_expired_reservation_is_ignored() -> None:
    res = Reservation("r1", "bob", "t1", T0 - 2 * H, T0)
    assert plan(snap([tgt("t1")], [run("a1", "alice")], reservations=[res])) == [
        Decision("a1", "t1")
    ]


# --- properties over random snapshots ----------------------------------------------------------
#
# Driven by Hypothesis (``st.data()``, so failures shrink).

USERS = ["u0", "u1", "u2"]
TAGS = ["x", "y"]
Case = tuple[Snapshot, PolicySettings]


class Draw(Protocol):
    def integers(self, lo: int, hi: int) -> int: ...
    def floats(self, lo: float, hi: float) -> float: ...
    def choice(self, options: Sequence[T]) -> T: ...


class HypothesisDraw:
    """The generator's draws, from Hypothesis (so failing snapshots shrink)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def integers(self, lo: int, hi: int) -> int:
        return int(self.data.draw(st.integers(lo, hi)))

    def floats(self, lo: float, hi: float) -> float:
        return float(self.data.draw(st.floats(lo, hi)))

    def choice(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(list(options)))  # type: ignore[no-any-return]


def subset(draw: Draw, items: Sequence[str], max_size: int | None = None) -> frozenset[str]:
    chosen = frozenset(x for x in items if draw.choice([True, False]))
    if max_size is not None and len(chosen) > max_size:
        chosen = frozenset(sorted(chosen)[:max_size])
    return chosen


def make_case(draw: Draw, single_target: bool = False) -> Case:
    count = 1 if single_target else draw.integers(1, 5)
    targets = [
        TargetView(
            id=f"id{i}",
            name=f"t{i}",
            plugin=draw.choice(["pa", "pb"]),
            tags=subset(draw, TAGS),
            enabled=True if single_target else draw.choice([True, True, False]),
            health="good"
            if single_target
            else draw.choice(["good", "good", "good", "bad", "unknown"]),
        )
        for i in range(count)
    ]
    names = [t.name for t in targets]
    busy = [] if single_target else [n for n in names if draw.choice([True, False, False])]
    running = {n: f"busy-{n}" for n in busy}
    wanted_choices: list[str | None] = [None, "pa", "pb", *names]
    queued = []
    for i in range(draw.integers(0, 10)):
        not_before = draw.choice([None, T0 + draw.integers(-60, 60) * M])
        queued.append(
            RunView(
                id=f"r{i}",
                user=draw.choice(USERS),
                submitted_at=T0 - draw.integers(0, 600) * M,
                priority=draw.integers(0, 2),
                wanted_target=draw.choice(wanted_choices),
                required_tags=subset(draw, TAGS, max_size=1),
                max_runtime_s=float(draw.integers(60, 4 * 3600)),
                not_before=not_before,
            )
        )
    reservations = []
    for i in range(draw.integers(0, 3)):
        start = T0 + draw.integers(-180, 180) * M
        reservations.append(
            Reservation(
                id=f"res{i}",
                user=draw.choice(USERS),
                target=draw.choice(names),
                starts_at=start,
                ends_at=start + draw.integers(10, 240) * M,
                lend_idle=draw.choice([True, False]),
            )
        )
    usage = []
    for _ in range(draw.integers(0, 6)):
        start = T0 - draw.integers(0, 30 * 60) * M
        usage.append(
            UsageEntry(
                user=draw.choice(USERS),
                target=draw.choice(names),
                started_at=start,
                ended_at=start + draw.integers(1, 600) * M,
            )
        )
    soft = draw.choice([None, draw.floats(0.05, 1.0)])
    hard = draw.choice([None, draw.floats(0.05, 1.0)])
    ps = PolicySettings(
        shares={u: draw.floats(0.5, 4.0) for u in USERS}, soft_cap=soft, hard_cap=hard
    )
    return Snapshot(targets, queued, T0, running, reservations, usage), ps


def prop(
    examples: int, single_target: bool = False
) -> Callable[[Callable[[Snapshot, PolicySettings], None]], Callable[..., None]]:
    """Turn ``check(snapshot, settings)`` into a test over ``examples`` random snapshots."""

    def wrap(check: Callable[[Snapshot, PolicySettings], None]) -> Callable[..., None]:
        @hyp_settings(max_examples=examples, deadline=None)
        @given(st.data())
        def test(data: Any) -> None:
            check(*make_case(HypothesisDraw(data), single_target))

        test.__doc__ = check.__doc__
        return test

    return wrap


def _holder_waiting(s: Snapshot, ps: PolicySettings, holder: str, t: TargetView) -> bool:
    return any(
        r.user == holder
        and compatible(r, t)
        and t.health == "good"
        and (r.not_before is None or r.not_before <= s.now)
        and (
            ps.hard_cap is None
            or usage_seconds(s.usage, r.user, s.now, ps.window_s, t.name)
            <= ps.hard_cap * ps.window_s
        )
        for r in s.queued
    )


@prop(300)
def test_plan_is_a_valid_matching(s: Snapshot, ps: PolicySettings) -> None:
    """No target gets two runs, no run two targets; only free healthy targets; caps/windows."""
    decisions = plan(s, ps)
    runs = {r.id: r for r in s.queued}
    targets = {t.name: t for t in s.targets}
    assert len({d.run_id for d in decisions}) == len(decisions)
    assert len({d.target for d in decisions}) == len(decisions)
    for d in decisions:
        t, r = targets[d.target], runs[d.run_id]
        assert t.enabled and t.health == "good" and t.name not in s.running
        assert compatible(r, t)
        assert r.not_before is None or r.not_before <= s.now
        # Reservation windows of other users are respected (independent check).
        for res in s.reservations:
            if res.target != t.name or res.user == r.user or res.ends_at <= s.now:
                continue
            if res.starts_at <= s.now:
                assert res.lend_idle and not _holder_waiting(s, ps, res.user, t)
            else:
                assert s.now + timedelta(seconds=r.max_runtime_s) <= res.starts_at
        if ps.hard_cap is not None:
            used = usage_seconds(s.usage, r.user, s.now, ps.window_s, t.name)
            assert used <= ps.hard_cap * ps.window_s


@prop(300)
def test_plan_is_work_conserving(s: Snapshot, ps: PolicySettings) -> None:
    """No free eligible target idles while a run that may start on it is left waiting."""
    decisions = plan(s, ps)
    used_targets = {d.target for d in decisions}
    assigned = {d.run_id for d in decisions}
    for t in s.targets:
        if not target_eligible(s, t) or t.name in used_targets:
            continue
        for r in s.queued:
            assert r.id in assigned or not eligible(s, ps, r, t), (r, t)
            # eligible() itself: due, compatible, not hard-capped, not reservation-blocked.
            if (
                r.id not in assigned
                and compatible(r, t)
                and t.health == "good"
                and (r.not_before is None or r.not_before <= s.now)
                and not s.reservations
                and ps.hard_cap is None
            ):
                raise AssertionError(f"{r.id} left waiting while {t.name} idles")


@prop(300, single_target=True)
def test_fifo_within_user_and_priority_on_one_target(s: Snapshot, ps: PolicySettings) -> None:
    """Runs of one user and priority competing for one target start in submission order."""
    (t,) = s.targets
    decisions = plan(s, ps)
    if not decisions:
        assert not any(eligible(s, ps, r, t) for r in s.queued)
        return
    chosen = next(r for r in s.queued if r.id == decisions[0].run_id)
    for r in s.queued:
        if r.user == chosen.user and r.priority == chosen.priority and eligible(s, ps, r, t):
            assert (chosen.submitted_at, chosen.id) <= (r.submitted_at, r.id)


@prop(100)
def test_explain_always_answers(s: Snapshot, ps: PolicySettings) -> None:
    """explain() says "starts now" exactly for the runs plan() starts."""
    started = {d.run_id for d in plan(s, ps)}
    for r in s.queued:
        text = explain(s, ps, r.id)
        assert text
        assert text.startswith("starts now") == (r.id in started)


# --- share convergence -----------------------------------------------------------------------


def _simulate(shares: dict[str, float], seed: int) -> float:
    """Two users flood one target; returns the share of target time user ``a`` got."""
    rnd = random.Random(seed)
    target = tgt("t1")
    ps = PolicySettings(shares=shares)
    now = T0
    ledger: list[UsageEntry] = []
    counter = 0
    queue: list[RunView] = []
    for u in ("a", "b"):
        for _ in range(5):
            counter += 1
            dur = float(rnd.randint(600, 3 * 3600))
            queue.append(RunView(f"r{counter}", u, now - H + counter * M, dur))
    got = {"a": 0.0, "b": 0.0}
    for _ in range(200):
        s = Snapshot([target], queue, now, usage=ledger)
        (decision,) = plan(s, ps)
        r = next(q for q in queue if q.id == decision.run_id)
        queue = [q for q in queue if q.id != r.id]
        end = now + timedelta(seconds=r.max_runtime_s)
        ledger.append(UsageEntry(r.user, "t1", now, end))
        got[r.user] += r.max_runtime_s
        now = end
        counter += 1  # the user resubmits at once: the queue stays flooded
        dur = float(rnd.randint(600, 3 * 3600))
        queue.append(RunView(f"r{counter}", r.user, now, dur))
    return got["a"] / (got["a"] + got["b"])


def test_share_convergence_equal_shares() -> None:
    for seed in range(3):
        assert 0.4 <= _simulate({"a": 1.0, "b": 1.0}, seed) <= 0.6


def test_share_convergence_three_to_one() -> None:
    for seed in range(3):
        assert 0.65 <= _simulate({"a": 3.0, "b": 1.0}, seed) <= 0.85


# --- health checks, policy variants, lease preference -----------------------------------------


def test_an_unknown_target_takes_only_its_health_check_which_goes_first() -> None:
    unknown = tgt("t1", health="unknown")
    s = snap([unknown], [run("user", "a", 0), run("check", "agent", 30, health_check=True)])
    assert first(s) == "check"
    assert plan(snap([unknown], [run("user", "a", 0)])) == []
    good = snap(
        [tgt("t1")], [run("urgent", "a", 0, priority=99), run("c", "x", 9, health_check=True)]
    )
    assert first(good) == "c"  # before any operator priority


def test_fifo_policy_ignores_usage() -> None:
    usage = [UsageEntry("heavy", "t1", T0 - 2 * H, T0 - H)]
    s = snap(
        [tgt("t1")], [run("heavy-old", "heavy", 0), run("light-new", "light", 30)], usage=usage
    )
    assert first(s) == "light-new"
    assert first(s, PolicySettings(fifo=True)) == "heavy-old"


def test_allowed_names_restrict_the_targets() -> None:
    s = snap([tgt("t1"), tgt("t2")], [run("r", "a", allowed=frozenset({"t2"}))])
    assert plan(s) == [Decision("r", "t2")]


def test_prefer_breaks_ties_and_can_stop_at_the_first_preferred_decision() -> None:
    s = snap([tgt("t1"), tgt("t2"), tgt("t3")], [run("r1", "a", 0), run("r2", "a", 1)])
    assert plan(s)[0] == Decision("r1", "t1")
    assert plan(s, prefer=frozenset({"t3"}))[0] == Decision("r1", "t3")
    assert plan(s, prefer=frozenset({"t3"}), first_preferred=True) == [Decision("r1", "t3")]
