"""Export run records as one flat row per run: CSV, JSON or Parquet."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from deploybench.errors import UserError
from deploybench.store.flatten import FIXED_COLUMNS, flat_row

ExportFormat = Literal["csv", "json", "parquet"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "json", "parquet")

Row = dict[str, str | float | int | None]


def export_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The union of the rows' columns: fixed run columns first, then metric columns sorted."""
    metric_columns = {column for row in rows for column in row} - set(FIXED_COLUMNS)
    return [*FIXED_COLUMNS, *sorted(metric_columns)]


def export_rows(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[Row]]:
    """The columns and the flat rows (every column present, ``None`` where missing)."""
    flat = [flat_row(record) for record in records]
    columns = export_columns(flat)
    return columns, [{column: row.get(column) for column in columns} for row in flat]


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it only if the body succeeds.

    Readers (and a crash half-way) never see a partly written export.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    temporary = Path(name)
    # mkstemp creates the file private (0600); an export is meant to be shared.
    temporary.chmod(0o644)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_csv(columns: list[str], rows: list[Row], target: Path) -> None:
    with target.open("w", encoding="utf-8", newline="") as handle:
        # csv writes floats with repr(), so values read back exactly; None becomes "".
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _write_json(rows: list[Row], target: Path) -> None:
    with target.open("w", encoding="utf-8") as handle:
        # Flat rows never hold NaN (non-finite metrics are dropped), so strict JSON holds.
        json.dump(rows, handle, indent=1, allow_nan=False, ensure_ascii=False)
        handle.write("\n")


def _write_parquet(columns: list[str], rows: list[Row], target: Path) -> None:
    # Optional dependencies, imported only when asked for: the core install has neither.
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas' parquet engine; checked here for a clear error)
    except ImportError as exc:
        raise UserError(
            "Parquet export needs pandas and pyarrow, which are not installed: "
            "run pip install 'deploybench[export]', or export as csv or json"
        ) from exc
    frame = pd.DataFrame(rows, columns=columns)
    frame.to_parquet(target, engine="pyarrow", index=False)


def export_runs(records: Sequence[Mapping[str, Any]], fmt: ExportFormat, path: Path) -> Path:
    """Write one flat row per run (see :func:`deploybench.store.flatten.flat_row`) to ``path``.

    Columns are the union over runs: the fixed run columns, then the metric columns sorted.
    ``json`` writes a list of row objects. ``parquet`` needs the ``export`` extra and raises
    :class:`~deploybench.errors.UserError` without it. The file is replaced atomically.
    """
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    columns, rows = export_rows(records)
    path = Path(path)
    with atomic_path(path) as target:
        if fmt == "csv":
            _write_csv(columns, rows, target)
        elif fmt == "json":
            _write_json(rows, target)
        else:
            _write_parquet(columns, rows, target)
    return path


__all__ = [
    "EXPORT_FORMATS",
    "ExportFormat",
    "atomic_path",
    "export_columns",
    "export_rows",
    "export_runs",
]
