"""Crashes, hangs, runtime errors, memory exhaustion and build failures end the run with
status failed, the failure kind, and the log kept (through real worker processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploybench.plugins import PluginKind, registered
from deploybench.runner import run_experiment
from deploybench.testing.experiments import make_experiment
from deploybench.testing.fakes import FakeToolchain


def _run(tmp_path: Path, config: dict[str, Any], **sections: Any) -> Any:
    with registered(PluginKind.TOOLCHAIN, "fake", FakeToolchain):
        experiment = make_experiment(toolchain="fake", config=config, **sections)
        return run_experiment(experiment, workdir=tmp_path)


def _log(outcome: Any) -> str:
    text: str = outcome.artifacts.files["log"].read_text()
    return text


def test_fake_toolchain_succeeds_without_faults(tmp_path: Path) -> None:
    outcome = _run(tmp_path, {})
    assert outcome.record.status == "succeeded", outcome.record.error
    assert outcome.record.metrics["semantic_preservation"]["ratio"] == 1.0


def test_crash_in_a_repetition(tmp_path: Path) -> None:
    outcome = _run(tmp_path, {"fault": "crash", "after_runs": 5})
    record = outcome.record
    assert record.status == "failed"
    assert record.error is not None and record.error.kind == "crash"
    assert "signal 11" in record.error.message
    assert record.validity.verdict == "invalid"
    assert "functional" in _log(outcome)


def test_hang_is_killed_at_the_timeout(tmp_path: Path) -> None:
    outcome = _run(tmp_path, {"fault": "hang", "after_runs": 2}, measurement={"timeout": 3.0})
    record = outcome.record
    assert record.status == "failed"
    assert record.error is not None and record.error.kind == "timeout"
    assert "3 s" in record.error.message


def test_runtime_error_message_and_traceback_are_kept(tmp_path: Path) -> None:
    outcome = _run(tmp_path, {"fault": "raise", "fault_at": "load"})
    record = outcome.record
    assert record.error is not None and record.error.kind == "runtime_error"
    assert "injected runtime failure" in record.error.message
    assert "Traceback" in _log(outcome)


def test_memory_limit_stops_a_hog(tmp_path: Path) -> None:
    outcome = _run(
        tmp_path,
        {"fault": "memory", "fault_at": "load"},
        environment={"memory_limit": "300MiB"},
    )
    record = outcome.record
    assert record.status == "failed"
    assert record.error is not None and record.error.kind == "memory_limit", record.error


def test_build_failure_records_the_step_log(tmp_path: Path) -> None:
    outcome = _run(tmp_path, {"fail_build": True})
    record = outcome.record
    assert record.status == "failed"
    assert record.error is not None and record.error.kind == "build"
    assert "step 'copy' failed" in record.error.message
    assert "copied the model" in _log(outcome)


def test_noisy_outputs_lower_semantic_preservation(tmp_path: Path) -> None:
    outcome = _run(
        tmp_path,
        {"fault": "noise", "noise": 0.05},
        semantic_preservation={"distance": "rel", "threshold": 1e-3},
    )
    ratio = outcome.record.metrics["semantic_preservation"]["ratio"]
    assert ratio < 0.2


@pytest.mark.parametrize("distance", ["label", "topk"])
def test_small_noise_keeps_labels(tmp_path: Path, distance: str) -> None:
    outcome = _run(
        tmp_path,
        {"fault": "noise", "noise": 1e-4},
        semantic_preservation={"distance": distance, "threshold": 0.0, "k": 1},
    )
    assert outcome.record.metrics["semantic_preservation"]["ratio"] == 1.0
