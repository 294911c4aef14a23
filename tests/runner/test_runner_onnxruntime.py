"""End-to-end runs of real ONNX Runtime on the open problems (fp32 and INT8)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deploybench.hashing import sha256_file
from deploybench.runner import run_experiment
from deploybench.testing.experiments import make_experiment

RECORD_KEYS = {
    "id",
    "experiment",
    "status",
    "error",
    "provenance",
    "validity",
    "metrics",
    "environment",
    "steps",
    "artifacts",
}
LATENCY_KEYS = {"n", "min", "max", "mean", "std", "cv", "median", "p90", "p95", "p99", "ci"}


def test_fp32_run_record_shape_and_figures(tmp_path: Path) -> None:
    outcome = run_experiment(
        make_experiment(config={"graph_optimization": "all"}), workdir=tmp_path
    )
    record = outcome.record
    assert record.status == "succeeded", record.error
    data = json.loads(record.model_dump_json())
    assert set(data) >= RECORD_KEYS
    assert data["provenance"] == "measured"
    assert data["validity"]["verdict"] in ("valid", "invalid")
    metrics = data["metrics"]
    assert set(metrics["latency_ms"]) >= LATENCY_KEYS
    latency = metrics["latency_ms"]
    assert latency["min"] <= latency["median"] <= latency["max"]
    lo, hi = latency["ci"]["median"]
    assert lo <= latency["median"] <= hi
    assert latency["n"] == sum(rep["n"] for rep in record.repetitions)
    assert len(record.repetitions) == 2
    for key in ("first_inference_ms", "load_ms", "throughput_per_s"):
        assert metrics[key] > 0
    assert metrics["peak_rss_bytes"] > metrics["baseline_rss_bytes"] > 0
    assert metrics["model_size_bytes"] > 0
    # The open MLP scores ~0.97 on the held-out digits; fp32 matches its reference exactly.
    assert 0.93 <= metrics["accuracy"]["accuracy"] <= 1.0
    semantic = metrics["semantic_preservation"]
    assert semantic["ratio"] == 1.0 and semantic["n"] == 360
    assert semantic["ci"][0] < 1.0 <= semantic["ci"][1]
    # Resolved definition: profile values filled in, defaults made explicit.
    plan = data["experiment"]["measurement"]
    assert plan["min_iterations"] == 30 and plan["max_iterations"] is not None
    assert data["experiment"]["semantic_preservation"]["distance"] == "label"
    assert data["experiment"]["problem"]["task"] == "classification"
    # Steps are logged with versions and hashes; artifacts are the files they name.
    assert [s["name"] for s in data["steps"]] == ["validate", "optimize"]
    for name, digest in data["artifacts"].items():
        assert sha256_file(outcome.artifacts.files[name]) == digest
    assert {"raw_latencies", "log", "environment", "model", "dataset", "outputs"} <= set(
        data["artifacts"]
    )
    raw = np.load(outcome.artifacts.files["raw_latencies"])
    assert sorted(raw.files) == ["repetition_0", "repetition_1"]
    assert raw["repetition_0"].dtype == np.int64
    assert data["environment"]["cpu"]["logical_cores"] >= 1
    assert "onnxruntime" in data["environment"]["packages"]
    assert data["session"]["intra_op_threads"] == 1


def test_fp32_outputs_match_reference_bit_for_bit_at_zero_tolerance(tmp_path: Path) -> None:
    experiment = make_experiment(
        config={"graph_optimization": "disabled"},
        semantic_preservation={"distance": "max_abs", "threshold": 0.0},
    )
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.metrics["semantic_preservation"]["ratio"] == 1.0


def test_dynamic_int8_tolerances_behave_as_documented(tmp_path: Path) -> None:
    strict = make_experiment(
        config={"quantization": "dynamic-int8"},
        semantic_preservation={"distance": "max_abs", "threshold": 1e-6},
    )
    record = run_experiment(strict, workdir=tmp_path / "strict").record
    assert record.status == "succeeded", record.error
    metrics = record.metrics
    # INT8 arithmetic changes the logits: almost no output is identical at 1e-6...
    assert metrics["semantic_preservation"]["ratio"] < 0.5
    assert metrics["semantic_preservation"]["max_distance"] > 1e-3
    # ...while the predicted labels barely move and accuracy stays close to fp32.
    assert metrics["accuracy"]["accuracy"] >= 0.9
    assert abs(metrics["accuracy"]["accuracy"] - metrics["reference_accuracy"]["accuracy"]) < 0.03
    loose = make_experiment(
        config={"quantization": "dynamic-int8"},
        semantic_preservation={"distance": "max_abs", "threshold": 100.0},
    )
    assert (
        run_experiment(loose, workdir=tmp_path / "loose").record.metrics["semantic_preservation"][
            "ratio"
        ]
        == 1.0
    )
    assert [s.name for s in record.steps] == ["validate", "preprocess", "quantize", "optimize"]


@pytest.mark.slow
def test_cnn_static_int8_per_channel(tmp_path: Path) -> None:
    experiment = make_experiment(
        model="zoo:digits-cnn",
        config={
            "quantization": "static-int8",
            "per_channel": True,
            "calibration_samples": 32,
        },
        semantic_preservation={"distance": "label", "threshold": 0.0},
    )
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.status == "succeeded", record.error
    assert record.metrics["accuracy"]["accuracy"] >= 0.9
    assert record.metrics["semantic_preservation"]["ratio"] >= 0.95
    quantize = next(s for s in record.steps if s.name == "quantize")
    assert "static-qdq" in quantize.log and "'calibration_samples': 32" in quantize.log


def test_regression_metrics_on_diabetes(tmp_path: Path) -> None:
    experiment = make_experiment(model="zoo:diabetes-linear", dataset="zoo:diabetes")
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.status == "succeeded", record.error
    regression = record.metrics["regression"]
    assert 0.2 <= regression["r2"] <= 0.5
    assert regression["rmse"] == pytest.approx(regression["mse"] ** 0.5)
    assert record.experiment["semantic_preservation"] == {
        "distance": "rel",
        "threshold": 0.001,
        "k": 5,
        "output": 0,
    }
    assert record.metrics["semantic_preservation"]["ratio"] == 1.0


def test_environment_settings_reach_the_worker(tmp_path: Path) -> None:
    experiment = make_experiment(
        environment={"threads": 1, "cpu_affinity": [0], "env": {"DEPLOYBENCH_MARK": "42"}},
        measurement={"repetitions": 1},
    )
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.status == "succeeded", record.error
    assert record.environment["cpu"]["affinity"] == [0]
    assert record.environment["env"]["DEPLOYBENCH_MARK"] == "42"
    assert record.environment["env"]["OMP_NUM_THREADS"] == "1"


def test_accuracy_samples_limits_the_functional_pass(tmp_path: Path) -> None:
    experiment = make_experiment(measurement={"accuracy_samples": 50, "repetitions": 1})
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.metrics["accuracy"]["n"] == 50
    assert record.metrics["semantic_preservation"]["n"] == 50


def test_peak_rss_is_the_workers_own_not_the_parents(tmp_path: Path) -> None:
    # A forked child's rusage counts the parent's pages it held before exec; the reported
    # peak must be the worker's own high-water mark, whatever the parent holds.
    ballast = bytearray(600 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    record = run_experiment(
        make_experiment(measurement={"repetitions": 1}), workdir=tmp_path
    ).record
    assert record.metrics["peak_rss_bytes"] < 400 * 1024 * 1024
    assert record.metrics["probes"]["peak_rss"]["median"] == record.metrics["peak_rss_bytes"]
    del ballast
