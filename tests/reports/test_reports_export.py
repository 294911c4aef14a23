"""export_runs: one flat row per run, read back with pandas, for every format."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from deploybench.errors import UserError
from deploybench.reports import export_runs
from deploybench.reports.export import export_rows
from deploybench.store.flatten import FIXED_COLUMNS, flat_row

SAMPLES = Path(__file__).parent / "data" / "sample_records.json"


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(SAMPLES.read_text(encoding="utf-8"))
    return loaded


def _expected(records: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [flat_row(record) for record in records]
    metric_columns = sorted({column for row in rows for column in row} - set(FIXED_COLUMNS))
    columns = [*FIXED_COLUMNS, *metric_columns]
    return pd.DataFrame([[row.get(c) for c in columns] for row in rows], columns=columns)


def _read(fmt: str, path: Path) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(path)
    if fmt == "json":
        return pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
    return pd.read_parquet(path)


def test_columns_are_fixed_then_sorted_union(records: list[dict[str, Any]]) -> None:
    columns, rows = export_rows(records)
    assert columns[: len(FIXED_COLUMNS)] == list(FIXED_COLUMNS)
    metric_columns = columns[len(FIXED_COLUMNS) :]
    assert metric_columns == sorted(metric_columns)
    assert "regression.r2" in columns and "accuracy.accuracy" in columns
    assert all(list(row) == columns for row in rows)
    assert rows[0]["regression.r2"] is None and rows[1]["accuracy.accuracy"] is None


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_reads_back_equal_to_flat_rows(
    records: list[dict[str, Any]], fmt: Any, tmp_path: Path
) -> None:
    path = tmp_path / "out" / f"runs.{fmt}"
    assert export_runs(records, fmt, path) == path
    frame = _read(fmt, path)
    expected = _expected(records)
    assert list(frame.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    # Atomic write: nothing but the export is left in the folder.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_json_is_a_list_of_row_objects(records: list[dict[str, Any]], tmp_path: Path) -> None:
    path = export_runs(records, "json", tmp_path / "runs.json")
    loaded = json.loads(path.read_text(encoding="utf-8"))
    columns, rows = export_rows(records)
    assert loaded == rows
    assert all(list(row) == columns for row in loaded)


def test_export_replaces_an_existing_file(records: list[dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("old", encoding="utf-8")
    export_runs(records[:1], "csv", path)
    assert len(pd.read_csv(path)) == 1


def test_parquet_without_pandas_says_how_to_install(
    records: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes `import pandas` raise ImportError.
    monkeypatch.setitem(sys.modules, "pandas", None)
    path = tmp_path / "runs.parquet"
    with pytest.raises(UserError, match=r"pip install 'deploybench\[export\]'"):
        export_runs(records, "parquet", path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_a_user_error(records: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="csv, json, parquet"):
        export_runs(records, "xlsx", tmp_path / "runs.xlsx")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
