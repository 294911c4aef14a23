"""Run experiments and keep (or discard) them; replay and compare stored runs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploybench.metrics.statistics import LatencyComparison, compare_latency
from deploybench.runner.experiment import Progress, RunOutcome, execute_prepared, new_workdir
from deploybench.runner.latency import harness_samples
from deploybench.runner.preparation import PreparedExperiment, ProblemFiles, prepare_experiment
from deploybench.runner.record import RunRecord
from deploybench.spec import parse_experiment
from deploybench.store.sql import SqlResultStore, StoredRun


@dataclass(frozen=True)
class FinishedRun:
    """A run's record and whether (and where) it was stored."""

    record: RunRecord
    stored: bool


def execute_and_keep(
    prepared: PreparedExperiment,
    store: SqlResultStore | None,
    progress: Progress | None = None,
    *,
    replay_of: str | None = None,
    out: Path | None = None,
) -> FinishedRun:
    """Execute a prepared experiment; store it unless ``store`` is None (discard).

    The work directory is removed whatever happens, so a discarded run leaves nothing.
    """
    workdir = new_workdir()
    try:
        outcome: RunOutcome = execute_prepared(prepared, workdir, progress)
        if out is not None:
            from deploybench.runner.artifacts import export_to_folder

            export_to_folder(
                outcome.record.model_dump_json(indent=2),
                outcome.record.id,
                outcome.record.artifacts,
                outcome.artifacts,
                out,
            )
        if store is not None:
            store.save_run(outcome.record, outcome.artifacts.files, replay_of=replay_of)
        return FinishedRun(outcome.record, store is not None)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def replay(store: SqlResultStore, run_id: str, progress: Progress | None = None) -> FinishedRun:
    """Run a stored run again from its stored definition and stored input artifacts only.

    The new run is stored and linked to the original (``replay_of``). The definition is
    parsed as stored, so the new record's experiment equals the original's.
    """
    original = store.get_run(run_id)
    names = store.artifact_names(original.record.id)
    experiment = parse_experiment(original.record.experiment, source=f"run {original.record.id}")
    with tempfile.TemporaryDirectory(prefix="deploybench-replay-") as tmp:
        folder = Path(tmp)
        model = store.artifacts.materialize(names["model"], folder / "model.onnx")
        dataset = store.artifacts.materialize(names["dataset"], folder / "dataset.npz")
        expected = None
        if "expected_outputs" in names:
            expected = store.artifacts.materialize(
                names["expected_outputs"], folder / "expected_outputs.npz"
            )
        prepared = prepare_experiment(experiment, ProblemFiles(model, dataset, expected))
        return execute_and_keep(prepared, store, progress, replay_of=original.record.id)


def load_latencies(store: SqlResultStore, stored: StoredRun) -> dict[str, np.ndarray]:
    """The raw harness-timed latency samples (ns) of a stored run, per repetition; empty for
    failed runs. The runtime-reported series stored beside them is left out."""
    digest = stored.record.artifacts.get("raw_latencies")
    if digest is None:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        path = store.artifacts.materialize(digest, Path(tmp) / "raw.npz")
        with np.load(path) as archive:
            return harness_samples({name: archive[name] for name in archive.files})


def compare_runs(
    store: SqlResultStore, runs: Sequence[StoredRun], confidence: float = 0.95, seed: int = 0
) -> list[LatencyComparison | None]:
    """Latency of each run against the first: ratio of medians with a clustered bootstrap
    CI and a Mann-Whitney test. None where a run has no latency samples."""
    baseline = [g.astype(np.float64) / 1e6 for g in load_latencies(store, runs[0]).values()]
    results: list[LatencyComparison | None] = []
    for run in runs[1:]:
        groups = [g.astype(np.float64) / 1e6 for g in load_latencies(store, run).values()]
        if not baseline or not groups:
            results.append(None)
            continue
        results.append(compare_latency(baseline, groups, confidence=confidence, seed=seed))
    return results
