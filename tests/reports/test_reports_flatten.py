"""metric_rows / flat_row: which leaves become rows, their names, statistics and units."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deploybench.store.flatten import FIXED_COLUMNS, MetricRow, flat_row, metric_rows

SAMPLES = Path(__file__).parent / "data" / "sample_records.json"

METRICS: dict[str, Any] = {
    "latency_ms": {
        "n": 100,
        "median": 0.5,
        "p99": 1.5,
        "cv_unavailable": None,
        "ci": {"level": 0.95, "method": "bootstrap", "median": [0.4, 0.6], "unavailable": {}},
        "outliers": {"count": 3, "fraction": 0.03},
    },
    "first_inference_ms": 2.0,
    "throughput_per_s": 1000.0,
    "peak_rss_bytes": 1024,
    "accuracy": {
        "accuracy": 0.9,
        "accuracy_ci": [0.85, 0.95],
        "per_class": {"3": {"f1": 0.8}},
        "confusion_matrix": [[1, 0], [0, 1]],
        "labels": [0, 1],
    },
    "semantic_preservation": {
        "ratio": 1.0,
        "ci": [0.98, 1.0],
        "distance": "label",
        "threshold": 0.0,
        "note": None,
        "flag": True,
        "bad": float("nan"),
    },
    "probes": {
        "peak_rss": {"unit": "bytes", "provenance": "measured", "median": 10.0, "values": [9, 10]},
        "temperature_start": {"unavailable": "no thermal zones"},
    },
    "regression": {"unavailable": "no targets"},
    "weird": float("inf"),
}


def _records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(SAMPLES.read_text(encoding="utf-8"))
    return records


def test_metric_rows_of_a_known_dict_are_exact() -> None:
    assert metric_rows(METRICS) == [
        MetricRow("accuracy", "accuracy", 0.9, None),
        MetricRow("accuracy", "accuracy_ci.low", 0.85, None),
        MetricRow("accuracy", "accuracy_ci.high", 0.95, None),
        MetricRow("accuracy", "per_class.3.f1", 0.8, None),
        MetricRow("first_inference_ms", "value", 2.0, "ms"),
        MetricRow("latency_ms", "ci.level", 0.95, None),
        MetricRow("latency_ms", "ci.median.low", 0.4, "ms"),
        MetricRow("latency_ms", "ci.median.high", 0.6, "ms"),
        MetricRow("latency_ms", "median", 0.5, "ms"),
        MetricRow("latency_ms", "n", 100.0, None),
        MetricRow("latency_ms", "outliers.count", 3.0, None),
        MetricRow("latency_ms", "outliers.fraction", 0.03, None),
        MetricRow("latency_ms", "p99", 1.5, "ms"),
        MetricRow("peak_rss_bytes", "value", 1024.0, "bytes"),
        MetricRow("probes.peak_rss", "median", 10.0, "bytes"),
        MetricRow("semantic_preservation", "ci.low", 0.98, None),
        MetricRow("semantic_preservation", "ci.high", 1.0, None),
        MetricRow("semantic_preservation", "ratio", 1.0, None),
        MetricRow("semantic_preservation", "threshold", 0.0, None),
        MetricRow("throughput_per_s", "value", 1000.0, "1/s"),
    ]


def test_metric_rows_order_does_not_depend_on_insertion_order() -> None:
    reversed_metrics = dict(reversed(list(METRICS.items())))
    assert metric_rows(reversed_metrics) == metric_rows(METRICS)
    assert metric_rows({}) == []


def test_metric_rows_of_a_real_record() -> None:
    rows = metric_rows(_records()[0]["metrics"])
    by_key = {(row.name, row.statistic): row for row in rows}
    assert by_key[("latency_ms", "ci.median.low")].unit == "ms"
    assert by_key[("latency_ms", "filtered.p99")].unit == "ms"
    assert by_key[("accuracy", "per_class.3.f1")].value < 1.0
    assert by_key[("probes.cpu_seconds", "median")].unit == "s"
    assert by_key[("model_size_bytes", "value")].value == 6145.0
    assert not any("confusion_matrix" in row.statistic or "values" in row.statistic for row in rows)
    assert not any(row.name.startswith("probes.temperature") for row in rows)
    per_class = [row.statistic for row in rows if row.statistic.startswith("per_class.")]
    assert per_class[:2] == ["per_class.0.f1", "per_class.0.precision"]


def test_flat_row_has_fixed_columns_then_metric_columns() -> None:
    record = _records()[0]
    row = flat_row(record)
    assert list(row)[: len(FIXED_COLUMNS)] == list(FIXED_COLUMNS)
    assert row["id"] == record["id"]
    assert row["experiment"] == "digits-mlp-ort-int8"
    assert row["toolchain"] == "onnxruntime"
    assert row["target"] == "local"
    assert (row["status"], row["verdict"], row["provenance"]) == (
        "succeeded",
        "invalid",
        "measured",
    )
    assert row["error_kind"] is None
    assert row["model_sha256"] == record["inputs"]["model"]
    assert row["dataset_sha256"] == record["inputs"]["dataset"]
    assert row["started_at"] == record["started_at"]
    assert row["first_inference_ms"] == record["metrics"]["first_inference_ms"]
    assert row["latency_ms.ci.median.high"] == record["metrics"]["latency_ms"]["ci"]["median"][1]
    assert row["probes.peak_rss.median"] == record["metrics"]["probes"]["peak_rss"]["median"]
    assert "first_inference_ms.value" not in row


def test_flat_row_of_a_failed_run() -> None:
    row = flat_row(_records()[2])
    assert (row["status"], row["error_kind"], row["verdict"]) == ("failed", "crash", "invalid")
    assert set(row) - set(FIXED_COLUMNS) == {
        "load_ms",
        "model_size_bytes",
        "input_model_size_bytes",
    }


def test_flat_row_tolerates_a_minimal_record() -> None:
    row = flat_row({"id": "x", "experiment": {"name": "e", "target": {"name": "board"}}})
    assert row["target"] == "board"
    assert row["verdict"] is None and row["toolchain"] is None
