"""The demo campaign stores its runs and writes a self-contained report (reduced campaign)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploybench.services import demo
from deploybench.services.store import open_store


def test_demo_stores_runs_and_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path / "home"))
    fast: dict[str, Any] = {
        **demo.DEMO_PLAN,
        "min_duration": 0.05,
        "min_iterations": 20,
        "repetitions": 2,
        "warmup_seconds": 0.0,
    }
    monkeypatch.setattr(demo, "DEMO_PLAN", fast)
    monkeypatch.setattr(demo, "DEMO_CONFIGURATIONS", demo.DEMO_CONFIGURATIONS[:2])
    seen: list[tuple[int, int, str]] = []
    store = open_store()
    result = demo.run_demo(store, lambda i, n, name: seen.append((i, n, name)))
    assert [r.status for r in result.records] == ["succeeded", "succeeded"]
    assert [s[0] for s in seen] == [0, 1, 2] and seen[-1][2] == "report"
    assert {r.record.id for r in store.list_runs()} == {r.id for r in result.records}
    html = result.report.read_text()
    assert result.report.parent == tmp_path / "home" / "reports"
    for record in result.records:
        assert record.experiment["name"] in html
    assert "<script src=" not in html


def test_demo_campaign_covers_the_configurations_the_issue_names() -> None:
    configs = demo.DEMO_CONFIGURATIONS
    assert {c[2].get("quantization", "none") for c in configs} >= {
        "none",
        "dynamic-int8",
        "static-int8",
    }
    assert {c[2]["graph_optimization"] for c in configs} >= {"disabled", "basic", "all"}
    assert {c[3] for c in configs} == {1, 2}
    names = [e.name for e in demo.demo_experiments()]
    assert len(names) == len(set(names))
