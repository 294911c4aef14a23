"""The worker's timing loop honours the stop rule, warm-up and caps; the functional pass pads
and trims fixed batches."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deploybench.harness.protocol import TimingPlan
from deploybench.harness.worker import (
    functional_pass,
    measure,
    measure_window,
    timing_batches,
    warm_up,
)


def _plan(**overrides: Any) -> TimingPlan:
    values: dict[str, Any] = {
        "warmup_runs": 0,
        "warmup_seconds": 0.0,
        "warmup_max_seconds": 1.0,
        "min_iterations": 10,
        "min_duration": 0.0,
        "max_duration": 10.0,
        "max_iterations": 1_000_000,
    }
    values.update(overrides)
    return TimingPlan(**values)


def _noop(feed: Any) -> None:
    return None


def test_stop_rule_needs_both_iterations_and_duration() -> None:
    latencies, window, met, why = measure(_noop, [0], _plan(min_iterations=10, min_duration=0.05))
    assert met and why == "stop-rule"
    assert latencies.size >= 10 and window >= 50_000_000  # duration was the binding condition
    latencies, window, met, _ = measure(
        lambda _: time.sleep(0.002), [0], _plan(min_iterations=25, min_duration=0.001)
    )
    assert met and latencies.size == 25  # iterations were the binding condition
    assert latencies.dtype == np.int64 and latencies.min() >= 2_000_000


def test_caps_end_the_window_without_meeting_the_rule() -> None:
    _, _, met, why = measure(_noop, [0], _plan(min_iterations=100, max_iterations=50))
    assert (met, why) == (False, "max_iterations")
    _, window, met, why = measure(
        lambda _: time.sleep(0.01), [0], _plan(min_iterations=1000, max_duration=0.05)
    )
    assert (met, why) == (False, "max_duration") and window >= 50_000_000


def test_feeds_are_cycled_in_order() -> None:
    seen: list[int] = []
    measure(seen.append, [0, 1, 2], _plan(min_iterations=7))
    assert seen == [0, 1, 2, 0, 1, 2, 0]


def test_runtime_reported_latency_is_read_once_per_call_outside_the_window() -> None:
    events: list[str] = []
    reported = iter(range(1000, 2000))

    def call(_: Any) -> None:
        events.append("call")
        time.sleep(0.001)

    def runtime_latency() -> int:
        events.append("read")
        time.sleep(0.02)  # slow on purpose: it must not land in the timed interval
        return next(reported)

    window = measure_window(call, [0], _plan(min_iterations=8), runtime_latency)
    assert events == ["call", "read"] * 8  # each figure read right after its own call
    assert window.runtime_latencies is not None
    assert window.runtime_latencies.dtype == np.int64
    assert window.runtime_latencies.tolist() == list(range(1000, 1008))
    # Were the read inside the interval, every latency would be >= 20 ms (sleep's guarantee);
    # the median, not the max, so that one scheduler hiccup on a loaded machine cannot fail it.
    assert window.latencies.size == 8 and np.median(window.latencies) < 20_000_000
    assert measure_window(_noop, [0], _plan()).runtime_latencies is None


def test_warm_up_continues_until_steady() -> None:
    # Calls get faster over the first 30 runs (a JIT or cache warming up), then are stable.
    calls = {"n": 0}

    def call(_: Any) -> None:
        calls["n"] += 1
        time.sleep(max(0.001, 0.007 - 0.0002 * calls["n"]))

    runs, _, steady = warm_up(call, [0], _plan(warmup_runs=5, warmup_max_seconds=3.0))
    assert steady and runs >= 40  # not while still speeding up: two stable windows of 10


def test_warm_up_reports_no_steady_state_at_the_cap() -> None:
    calls = {"n": 0}

    def slower_and_slower(_: Any) -> None:
        calls["n"] += 1
        time.sleep(0.0002 * calls["n"])

    runs, elapsed, steady = warm_up(
        slower_and_slower, [0], _plan(warmup_runs=1, warmup_max_seconds=0.3)
    )
    assert not steady and elapsed >= 300_000_000 and runs > 0


def test_warm_up_can_be_disabled() -> None:
    assert warm_up(_noop, [0], _plan()) == (0, 0, False)


def test_timing_batches_wrap_around_small_datasets() -> None:
    arrays = {"x": np.arange(5, dtype=np.float32).reshape(5, 1)}
    batches = timing_batches(arrays, batch_size=4)
    assert len(batches) == 2
    assert batches[1]["x"].ravel().tolist() == [4, 0, 1, 2]
    assert timing_batches(arrays, batch_size=8)[0]["x"].shape == (8, 1)


class _FixedBatchSession:
    """Accepts only batches of exactly 4, like a model exported with a fixed batch size."""

    needs_synchronize = False

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(inputs)

    def run(self, feed: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        assert feed["x"].shape[0] == 4
        return [feed["x"] * 2]

    def synchronize(self) -> None:
        return None

    def info(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        return None


def test_functional_pass_pads_the_last_batch_and_trims_outputs() -> None:
    arrays = {"x": np.arange(10, dtype=np.float32).reshape(10, 1)}
    outputs = functional_pass(_FixedBatchSession(), arrays, batch_size=4, n_samples=10)
    assert outputs["0"].ravel().tolist() == [2 * i for i in range(10)]
    limited = functional_pass(_FixedBatchSession(), arrays, batch_size=4, n_samples=6)
    assert limited["0"].shape == (6, 1)
