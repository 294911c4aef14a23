"""comparison_table / config_label: one row per run, n/a where missing, failures named."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from deploybench.reports import comparison_table, config_label, config_summary, summary_rows

SAMPLES = Path(__file__).parent / "data" / "sample_records.json"


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(SAMPLES.read_text(encoding="utf-8"))
    return loaded


def _render(records: list[dict[str, Any]], title: str = "Comparison") -> str:
    console = Console(record=True, width=240, color_system=None)
    console.print(comparison_table(records, title))
    return console.export_text()


def test_config_label_and_summary(records: list[dict[str, Any]]) -> None:
    assert config_label(records[0]) == "digits-mlp-ort-int8"
    assert config_summary(records[0]) == "ort · dynamic-int8 · all · 1 thr"
    assert config_summary(records[1]) == "ort · basic · 1 thr"
    unnamed = copy.deepcopy(records[0])
    unnamed["experiment"]["name"] = ""
    assert config_label(unnamed) == "ort · dynamic-int8 · all · 1 thr"


def test_table_renders_one_row_per_run(records: list[dict[str, Any]]) -> None:
    text = _render(records)
    for name in ("digits-mlp-ort-int8", "diabetes-linear-ort", "digits-mlp-ort-crash"):
        assert text.count(name) == 1
    assert "ort · dynamic-int8 · all · 1 thr" in text
    assert "16.3 µs [11.8\u201316.4 µs]" in text  # median with its CI
    assert "96.94 %" in text  # classification accuracy
    assert "R² 0.3322" in text  # regression shows R² instead
    assert "100.00 % [98.98\u2013100.00 %]" in text  # semantic preservation with CI
    assert "309.8 MiB" in text
    assert "52,956/s" in text


def test_failed_run_shows_error_kind_and_na(records: list[dict[str, Any]]) -> None:
    row = summary_rows(records)[2]
    assert row["validity"] == "failed (crash)"
    assert row["median latency (CI)"] == "n/a"
    assert row["peak RSS"] == "n/a"
    assert row["accuracy / R²"] == "n/a"
    text = _render(records)
    assert "failed (crash)" in text
    assert "n/a" in text


def test_unavailable_sections_say_so(records: list[dict[str, Any]]) -> None:
    record = copy.deepcopy(records[0])
    record["metrics"]["latency_ms"] = {"unavailable": "the target has no timer"}
    record["metrics"]["accuracy"] = {"unavailable": "no labels"}
    del record["metrics"]["semantic_preservation"]
    row = summary_rows([record])[0]
    assert row["median latency (CI)"] == "unavailable"
    assert row["p99"] == "unavailable"
    assert row["accuracy / R²"] == "unavailable"
    assert row["semantic preservation (CI)"] == "n/a"
    assert row["validity"] == "invalid"


def test_user_text_is_not_rich_markup(records: list[dict[str, Any]]) -> None:
    record = copy.deepcopy(records[0])
    record["experiment"]["name"] = "[bold red]x[/bold red]"
    text = _render([record], title="[u]title[/u]")
    assert "[bold red]x[/bold red]" in text
    assert "[u]title[/u]" in text
