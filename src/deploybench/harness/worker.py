"""The measurement worker: ``python -m deploybench.harness.worker REQUEST.json``.

One worker is one fresh process. It loads the deployable through its session factory (timed),
runs the first inference (reported apart), warms up until steady, then times each call to
``Session.run`` with ``perf_counter_ns`` until the stop rule holds. The harness owns the clock:
the toolchain's code never times itself. A session that also reports the runtime's own figure
per inference (``last_runtime_latency_ns``) gets it read after each timed call, outside the
timed interval, into a second, runtime-reported series. Results go to a JSON file written
atomically.
"""

from __future__ import annotations

import gc
import importlib
import math
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from time import perf_counter_ns
from typing import Any, NamedTuple

import numpy as np

from deploybench.harness.protocol import TimingPlan, WorkerError, WorkerRequest, WorkerResult
from deploybench.toolchains.base import Deployable, Session, SessionFactory, SessionOptions

# Distinct prepared batches cycled through while timing: enough to defeat trivial caching
# of one input, few enough to keep memory bounded for large inputs.
MAX_TIMING_BATCHES = 64
# Steady state: the median of the last window is within this ratio of the previous one.
STEADY_WINDOW = 10
STEADY_TOLERANCE = 0.10
EXIT_FAILED = 3


def _read_vm_hwm() -> int | None:
    """Peak resident set size so far (bytes), from /proc/self/status."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _import_factory(reference: str) -> SessionFactory:
    module_name, _, attribute = reference.partition(":")
    factory: SessionFactory = getattr(importlib.import_module(module_name), attribute)
    return factory


def _batch(arrays: Mapping[str, np.ndarray], indices: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(array[indices]) for name, array in arrays.items()}


def _sample_count(arrays: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(arrays.values())).shape[0])


def timing_batches(
    arrays: Mapping[str, np.ndarray], batch_size: int, limit: int = MAX_TIMING_BATCHES
) -> list[dict[str, np.ndarray]]:
    """Full batches cycling over the samples (wrapping around when batch > dataset)."""
    n = _sample_count(arrays)
    count = max(1, min(limit, math.ceil(n / batch_size)))
    return [
        _batch(arrays, np.arange(i * batch_size, (i + 1) * batch_size) % n) for i in range(count)
    ]


def _is_steady(samples: list[int]) -> bool:
    if len(samples) < 2 * STEADY_WINDOW:
        return False
    last = float(np.median(samples[-STEADY_WINDOW:]))
    previous = float(np.median(samples[-2 * STEADY_WINDOW : -STEADY_WINDOW]))
    return previous > 0 and abs(last / previous - 1.0) <= STEADY_TOLERANCE


def _timed_call(session: Session) -> Callable[[Any], None]:
    """The call that is timed: run, plus synchronize for asynchronous runtimes."""
    run = session.run
    if not getattr(session, "needs_synchronize", True):
        return run  # type: ignore[return-value]
    sync = session.synchronize

    def run_and_sync(feed: Any) -> None:
        run(feed)
        sync()

    return run_and_sync


def warm_up(
    call: Callable[[Any], None], feeds: list[Any], plan: TimingPlan
) -> tuple[int, int, bool]:
    """Warm up for at least the minimum runs and seconds, then until steady or the cap.

    Returns (runs, nanoseconds, steady_state_reached).
    """
    if plan.warmup_runs == 0 and plan.warmup_seconds == 0:
        return 0, 0, False
    min_ns = int(plan.warmup_seconds * 1e9)
    max_ns = max(min_ns, int(plan.warmup_max_seconds * 1e9))
    samples: list[int] = []
    start = perf_counter_ns()
    count = len(feeds)
    i = 0
    while True:
        t0 = perf_counter_ns()
        call(feeds[i % count])
        t1 = perf_counter_ns()
        samples.append(t1 - t0)
        i += 1
        elapsed = t1 - start
        if i >= plan.warmup_runs and elapsed >= min_ns:
            if _is_steady(samples):
                return i, elapsed, True
            if elapsed >= max_ns:
                return i, elapsed, False


class TimedWindow(NamedTuple):
    """What :func:`measure_window` returns."""

    latencies: np.ndarray  # int64 ns, perf_counter_ns around each call
    runtime_latencies: np.ndarray | None  # int64 ns the runtime reported per call, or None
    window_ns: int
    stop_rule_met: bool
    stopped_by: str


def measure_window(
    call: Callable[[Any], None],
    feeds: list[Any],
    plan: TimingPlan,
    runtime_latency: Callable[[], int] | None = None,
) -> TimedWindow:
    """Time each call until >= min_iterations AND >= min_duration, or a cap is hit.

    With ``runtime_latency`` (a session's ``last_runtime_latency_ns``), its figure for each
    call is read right after the call's end timestamp, outside the timed interval: the
    harness-timed series is the same with or without it. The read does lengthen the window
    (and so lowers the throughput figure) by its own cost, an attribute read.
    """
    min_it, max_it = plan.min_iterations, plan.max_iterations
    min_ns, max_ns = int(plan.min_duration * 1e9), int(plan.max_duration * 1e9)
    latencies: list[int] = []
    append = latencies.append
    reported: list[int] = []
    report = reported.append
    count = len(feeds)
    clock = perf_counter_ns
    start = clock()
    i = 0
    while True:
        feed = feeds[i % count]
        t0 = clock()
        call(feed)
        t1 = clock()
        append(t1 - t0)
        if runtime_latency is not None:
            report(runtime_latency())
        i += 1
        elapsed = t1 - start
        if i >= min_it and elapsed >= min_ns:
            stop = (True, "stop-rule")
        elif elapsed >= max_ns:
            stop = (False, "max_duration")
        elif i >= max_it:
            stop = (False, "max_iterations")
        else:
            continue
        runtime = np.asarray(reported, dtype=np.int64) if runtime_latency is not None else None
        return TimedWindow(np.asarray(latencies, dtype=np.int64), runtime, elapsed, *stop)


def measure(
    call: Callable[[Any], None], feeds: list[Any], plan: TimingPlan
) -> tuple[np.ndarray, int, bool, str]:
    """Time each call until >= min_iterations AND >= min_duration, or a cap is hit.

    Returns (latencies_ns, window_ns, stop_rule_met, stopped_by).
    """
    window = measure_window(call, feeds, plan)
    return window.latencies, window.window_ns, window.stop_rule_met, window.stopped_by


def functional_pass(
    session: Session, arrays: Mapping[str, np.ndarray], batch_size: int, n_samples: int
) -> dict[str, np.ndarray]:
    """Run the first ``n_samples`` samples once and collect every output, batch-first.

    The last batch is padded with repeats of its last sample so fixed-batch models work;
    the padding's outputs are dropped.
    """
    n = min(n_samples, _sample_count(arrays))
    collected: list[list[np.ndarray]] = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        indices = np.arange(start, start + batch_size).clip(max=stop - 1)
        outputs = session.run(session.prepare(_batch(arrays, indices)))
        session.synchronize()
        if not collected:
            collected = [[] for _ in outputs]
        for slot, output in zip(collected, outputs, strict=True):
            slot.append(np.asarray(output)[: stop - start])
    return {str(i): np.concatenate(parts, axis=0) for i, parts in enumerate(collected)}


def execute(request: WorkerRequest) -> WorkerResult:
    """Do everything the request asks, in this process."""
    from deploybench.harness.environment import capture_environment
    from deploybench.problems.datasets import load_npz

    baseline = _read_vm_hwm()
    deployable = Deployable.read(request.deployable_dir)
    deployable.verify()
    if deployable.session_factory is None:
        raise ValueError(f"deployable of kind '{deployable.kind}' has no Python session factory")
    factory = _import_factory(deployable.session_factory)
    arrays = load_npz(request.inputs_path)
    arrays = {spec.name: arrays[spec.name] for spec in deployable.inputs}

    t0 = perf_counter_ns()
    session = factory(deployable, SessionOptions(threads=request.threads))
    load_ns = perf_counter_ns() - t0
    values: dict[str, Any] = {"load_ns": load_ns, "baseline_rss_bytes": baseline}
    if request.timing is not None:
        feeds = [session.prepare(batch) for batch in timing_batches(arrays, request.batch_size)]
        call = _timed_call(session)
        # Optional (ReportsRuntimeLatency): the runtime's own figure, read outside the window.
        runtime_latency = getattr(session, "last_runtime_latency_ns", None)
        if request.runtime_latencies_path is None:
            runtime_latency = None
        t0 = perf_counter_ns()
        call(feeds[0])
        first_ns = values["first_inference_ns"] = perf_counter_ns() - t0
        # A collection inside the window would be charged to the model: collect now, then
        # keep the collector off while timing.
        gc.collect()
        _log(
            f"loaded in {load_ns / 1e6:.1f} ms, first inference {first_ns / 1e6:.3f} ms,"
            f" {len(feeds)} prepared feeds; warming up"
        )
        gc.disable()
        try:
            runs, warm_ns, steady = warm_up(call, feeds, request.timing)
            _log(f"warm-up: {runs} runs in {warm_ns / 1e6:.1f} ms, steady: {steady}; measuring")
            window = measure_window(call, feeds, request.timing, runtime_latency)
        finally:
            gc.enable()
        _log(
            f"measured {window.latencies.size} calls in {window.window_ns / 1e6:.1f} ms"
            f" (stopped by {window.stopped_by})"
        )
        np.save(request.latencies_path, window.latencies)
        if window.runtime_latencies is not None and request.runtime_latencies_path is not None:
            np.save(request.runtime_latencies_path, window.runtime_latencies)
            values["runtime_latencies_path"] = request.runtime_latencies_path
        values.update(
            warmup_runs=runs,
            warmup_ns=warm_ns,
            steady_state=steady,
            n=int(window.latencies.size),
            measured_ns=window.window_ns,
            stop_rule_met=window.stop_rule_met,
            stopped_by=window.stopped_by,
        )
    if request.functional_samples > 0:
        outputs = functional_pass(session, arrays, request.batch_size, request.functional_samples)
        named = {spec.name: outputs[str(i)] for i, spec in enumerate(deployable.outputs)}
        np.savez(request.outputs_path, **named)  # type: ignore[arg-type]
        values["functional_samples"] = int(next(iter(named.values())).shape[0]) if named else 0
    values["session_info"] = session.info()
    session.close()
    if request.capture_environment:
        values["environment"] = capture_environment()
    # The worker's own high-water mark. rusage's ru_maxrss would also count the parent's
    # pages that the forked child held before exec, inflating the figure by the parent's size.
    values["peak_rss_bytes"] = _read_vm_hwm()
    return WorkerResult(ok=True, **values)


def _log(line: str) -> None:
    """One progress line on stderr, which the launcher keeps as the worker's log. Printed
    between phases, never inside a timed window; flushed so that whoever follows the log
    (the run's record, a benchmark aligning another tool with the window) sees it at once."""
    print(f"[worker] {line}", file=sys.stderr, flush=True)


def _write_result(path: Path, result: WorkerResult) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(result.model_dump_json(), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process; exit 0 on success, 3 on a caught failure."""
    args = sys.argv[1:] if argv is None else argv
    request = WorkerRequest.model_validate_json(Path(args[0]).read_text(encoding="utf-8"))
    try:
        result = execute(request)
    except Exception as exc:  # everything the model or runtime raises ends up in the record
        result = WorkerResult(
            ok=False,
            error=WorkerError(
                kind="memory_limit" if isinstance(exc, MemoryError) else "runtime_error",
                message=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            ),
        )
    if result.error is not None:
        print(result.error.traceback, file=sys.stderr, flush=True)
    _write_result(request.result_path, result)
    return 0 if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
