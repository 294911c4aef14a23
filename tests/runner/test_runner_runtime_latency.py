"""A session that reports the runtime's own latency gets a second, runtime-reported series:
recorded per repetition by the worker, summarised as ``runtime_latency_ms`` and kept in the
raw samples beside the harness-timed series, which it never replaces."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.plugins import PluginKind, registered
from deploybench.runner import run_experiment
from deploybench.runner.latency import harness_samples
from deploybench.testing.experiments import make_experiment
from deploybench.testing.fakes import FakeToolchain


def _run(tmp_path: Path, config: dict[str, Any]) -> Any:
    with registered(PluginKind.TOOLCHAIN, "fake", FakeToolchain):
        experiment = make_experiment(toolchain="fake", config=config)
        outcome = run_experiment(experiment, workdir=tmp_path)
    assert outcome.record.status == "succeeded", outcome.record.error
    return outcome


def test_a_session_reporting_its_latency_gets_a_runtime_series(tmp_path: Path) -> None:
    outcome = _run(tmp_path, {"report_latency": True})
    metrics = outcome.record.metrics
    runtime, harness = metrics["runtime_latency_ms"], metrics["latency_ms"]
    assert runtime["provenance"] == "runtime-reported"
    assert "Python call overhead" in runtime["note"]
    assert runtime["n"] == harness["n"] and runtime["n_groups"] == harness["n_groups"] == 2
    # The fake times its evaluation inside run(): never longer than the harness's clock around it.
    assert 0 < runtime["median"] <= harness["median"]
    assert set(runtime) >= {"mean", "p99", "ci", "cv"}  # the same statistics as latency_ms
    with np.load(tmp_path / "raw_latencies.npz") as raw:
        samples = {name: raw[name] for name in raw.files}
    assert sorted(samples) == [
        "repetition_0",
        "repetition_1",
        "runtime_repetition_0",
        "runtime_repetition_1",
    ]
    for i in range(2):
        rep, reported = samples[f"repetition_{i}"], samples[f"runtime_repetition_{i}"]
        assert reported.dtype == np.int64 and reported.shape == rep.shape
        assert (reported <= rep).all()  # each inside the wall time of its own call
    assert sorted(harness_samples(samples)) == ["repetition_0", "repetition_1"]


def test_a_session_without_it_has_no_runtime_series(tmp_path: Path) -> None:
    outcome = _run(tmp_path, {})
    assert "runtime_latency_ms" not in outcome.record.metrics
    assert "latency_ms" in outcome.record.metrics
    with np.load(tmp_path / "raw_latencies.npz") as raw:
        assert sorted(raw.files) == ["repetition_0", "repetition_1"]
    assert not list(tmp_path.rglob("runtime_latencies.npy"))
    # The same run also checks the worker's log (a second run would only cost time).
    assert_worker_log_names_each_phase(tmp_path, outcome.record.repetitions[0]["n"])


def assert_worker_log_names_each_phase(workdir: Path, calls: int) -> None:
    """The measurement worker writes its phases to its log, between phases and in order:
    loaded (with the load and first-inference times), warming up, measuring, measured. The
    run keeps that log, and a tool that follows it can line its own window up with the
    worker's (benchmarks/peer_agreement.py does)."""
    log = (workdir / "target" / "repetition-0" / "worker.log").read_text()
    lines = [line for line in log.splitlines() if line.startswith("[worker] ")]
    assert len(lines) == 3, log
    assert re.fullmatch(
        r"\[worker\] loaded in [\d.]+ ms, first inference [\d.]+ ms, \d+ prepared feeds; "
        r"warming up",
        lines[0],
    )
    assert re.fullmatch(
        r"\[worker\] warm-up: \d+ runs in [\d.]+ ms, steady: \w+; measuring", lines[1]
    )
    found = re.fullmatch(
        r"\[worker\] measured (\d+) calls in [\d.]+ ms \(stopped by .+\)", lines[2]
    )
    assert found is not None, lines[2]
    assert int(found.group(1)) == calls
