"""Synthetic run records with real artifact files, for store tests that need no runtime."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from deploybench.hashing import sha256_file
from deploybench.runner.record import RunErrorInfo, RunRecord, ValidityInfo


def make_record(
    folder: Path,
    *,
    name: str = "exp",
    toolchain: str = "onnxruntime",
    target: str = "local",
    status: str = "succeeded",
    median_ms: float = 1.0,
    p99_ms: float = 2.0,
    accuracy: float = 0.9,
    started: datetime | None = None,
    shared_model: bytes = b"model-bytes",
    seed: int = 0,
) -> tuple[RunRecord, dict[str, Path]]:
    """A plausible record plus the files its artifacts name (model, dataset, raw latencies,
    log). Runs made with the same ``shared_model`` share that artifact."""
    folder.mkdir(parents=True, exist_ok=True)
    run_id = f"{(started or datetime.now(UTC)):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
    files = {
        "model": folder / f"{run_id}-model.onnx",
        "dataset": folder / f"{run_id}-dataset.npz",
        "raw_latencies": folder / f"{run_id}-raw.npz",
        "log": folder / f"{run_id}-run.log",
    }
    files["model"].write_bytes(shared_model)
    rng = np.random.default_rng(seed)
    np.savez(files["dataset"], input=rng.random((4, 2), dtype=np.float32))
    np.savez(
        files["raw_latencies"],
        repetition_0=(rng.normal(median_ms, median_ms / 20, 200) * 1e6).astype(np.int64),
        repetition_1=(rng.normal(median_ms, median_ms / 20, 200) * 1e6).astype(np.int64),
    )
    files["log"].write_text(f"log of {run_id}\n")
    begin = started or datetime.now(UTC)
    record = RunRecord(
        id=run_id,
        experiment={
            "name": name,
            "problem": {"model": {"zoo": "digits-mlp"}, "dataset": {"zoo": "digits"}},
            "toolchain": {"name": toolchain, "version": None, "config": {}},
            "target": {"name": target, "config": {}},
        },
        status="succeeded" if status == "succeeded" else "failed",
        error=None if status == "succeeded" else RunErrorInfo(kind="crash", message="boom"),
        validity=ValidityInfo(verdict="valid" if status == "succeeded" else "invalid"),
        metrics={
            "latency_ms": {
                "n": 400,
                "median": median_ms,
                "p99": p99_ms,
                "ci": {"median": [median_ms * 0.9, median_ms * 1.1]},
            },
            "load_ms": 12.5,
            "accuracy": {"accuracy": accuracy},
        }
        if status == "succeeded"
        else {},
        environment={"packages": {"numpy": "2.0"}},
        steps=[],
        artifacts={key: sha256_file(path) for key, path in files.items()},
        started_at=begin.isoformat(),
        finished_at=(begin + timedelta(seconds=3)).isoformat(),
        deploybench_version="test",
        inputs={"model": sha256_file(files["model"]), "dataset": sha256_file(files["dataset"])},
    )
    return record, files
