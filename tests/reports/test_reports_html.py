"""write_html_report: one self-contained offline file, both figures, escaped user text."""

from __future__ import annotations

import copy
import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from plotly.offline import get_plotlyjs

from deploybench import __version__
from deploybench.reports import config_label, write_html_report
from deploybench.reports.html import LATENCY_FIGURE_ID, QUALITY_FIGURE_ID

SAMPLES = Path(__file__).parent / "data" / "sample_records.json"
Latencies = dict[str, dict[str, npt.NDArray[np.int64]]]


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(SAMPLES.read_text(encoding="utf-8"))
    return loaded


def _latencies(records: list[dict[str, Any]], per_repetition: int = 20_000) -> Latencies:
    """Log-normal nanosecond samples around each run's median (none for failed runs)."""
    rng = np.random.default_rng(0)
    result: Latencies = {}
    for record in records:
        if record["status"] != "succeeded":
            continue
        median_ns = record["metrics"]["latency_ms"]["median"] * 1e6
        result[record["id"]] = {
            f"repetition_{i}": (median_ns * rng.lognormal(0, 0.3, per_repetition)).astype(np.int64)
            for i in range(3)
        }
    return result


def _outside_plotly(text: str) -> str:
    """The report without the inlined plotly.js bundle (whose own source mentions URLs)."""
    bundle = get_plotlyjs()
    assert text.count(bundle) == 1, "plotly.js must be inlined exactly once"
    return text.replace(bundle, "")


def test_report_is_self_contained(records: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_html_report(records, _latencies(records), tmp_path / "r.html", "Comparison")
    text = path.read_text(encoding="utf-8")
    rest = _outside_plotly(text)
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"<link\b", rest, re.IGNORECASE)
    for forbidden in ("http://", "https://", "cdn"):
        assert forbidden not in rest.lower(), forbidden
    assert list(tmp_path.iterdir()) == [path]


def test_report_contents(records: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_html_report(records, _latencies(records), tmp_path / "r.html", "Comparison")
    rest = _outside_plotly(path.read_text(encoding="utf-8"))
    assert "<h1>Comparison</h1>" in rest
    assert f"deploybench {__version__}" in rest
    for record in records:
        assert html.escape(config_label(record)) in rest
        assert html.escape(record["validity"]["reasons"][0]) in rest
    for div_id in (LATENCY_FIGURE_ID, QUALITY_FIGURE_ID):
        assert f'id="{div_id}"' in rest
    assert "Latency distribution per configuration" in rest
    # A classification and a regression run: accuracy is plotted for the classification run,
    # the regression run is named as left out (its R² is in the table).
    assert "Accuracy vs median latency (1 run(s) without an accuracy" in rest
    regression_only = [r for r in records if "regression" in r.get("metrics", {})]
    path = write_html_report(regression_only, _latencies(regression_only), tmp_path / "s.html", "R")
    assert "Semantic preservation vs median latency" in _outside_plotly(path.read_text("utf-8"))
    assert "failed (crash)" in rest
    assert "measured" in rest and 'id="provenance"' in rest
    assert 'id="validity"' in rest and 'id="summary"' in rest


def test_accuracy_figure_when_every_run_is_classification(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = write_html_report(records[:1], _latencies(records[:1]), tmp_path / "r.html", "t")
    assert "Accuracy vs median latency" in path.read_text(encoding="utf-8")


def test_user_text_is_escaped(records: list[dict[str, Any]], tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    hostile = copy.deepcopy(records)
    hostile[0]["experiment"]["name"] = evil
    hostile[2]["error"]["message"] = evil
    hostile[1]["validity"]["warnings"] = [evil]
    path = write_html_report(hostile, _latencies(hostile), tmp_path / "r.html", f"t {evil}")
    text = path.read_text(encoding="utf-8")
    assert evil not in text
    assert "alert(1)</script>" not in text
    assert html.escape(evil) in text


def test_report_without_samples_still_writes(records: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_html_report(records[2:], {}, tmp_path / "r.html", "only a failure")
    rest = _outside_plotly(path.read_text(encoding="utf-8"))
    assert LATENCY_FIGURE_ID not in rest and "no data to plot" in rest


def test_twenty_runs_stay_under_five_megabytes(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    many = []
    for index in range(20):
        record = copy.deepcopy(records[index % 2])
        record["id"] = f"run-{index:02d}"
        many.append(record)
    latencies = _latencies(many, per_repetition=50_000)
    path = write_html_report(many, latencies, tmp_path / "r.html", "twenty")
    assert path.stat().st_size < 5_000_000
    rest = _outside_plotly(path.read_text(encoding="utf-8"))
    # Runs of one experiment get their id appended so each has its own box.
    assert "digits-mlp-ort-int8 [run-00]" in rest and "digits-mlp-ort-int8 [run-18]" in rest


def test_plotted_points_are_capped(records: list[dict[str, Any]], tmp_path: Path) -> None:
    latencies = _latencies(records[:1])
    path = write_html_report(records[:1], latencies, tmp_path / "r.html", "t", max_points=50)
    rest = _outside_plotly(path.read_text(encoding="utf-8"))
    match = re.search(r'"type":"box"', rest)
    assert match is not None
    box = re.search(r'"y":\[([^\]]*)\]', rest)
    assert box is not None
    values = [float(v) for v in box.group(1).split(",")]
    pooled = np.concatenate(list(latencies[records[0]["id"]].values())) / 1e3  # ns -> µs
    assert len(values) == 50
    assert values[0] == pytest.approx(pooled.min(), rel=1e-3)
    assert values[-1] == pytest.approx(pooled.max(), rel=1e-3)
