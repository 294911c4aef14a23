"""Flatten a run record's nested metrics into (name, statistic, value, unit) rows.

The SQL store indexes these rows and the exports turn them into columns, so both must agree
on names: ``name`` is the top-level metric key (probes become ``probes.<probe>``) and
``statistic`` is the rest of the path joined with dots, e.g. ``latency_ms`` / ``ci.median.low``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: The per-run columns every flat row starts with, in this order.
FIXED_COLUMNS: tuple[str, ...] = (
    "id",
    "experiment",
    "toolchain",
    "target",
    "status",
    "verdict",
    "provenance",
    "started_at",
    "finished_at",
    "error_kind",
    "model_sha256",
    "dataset_sha256",
)

# Leaves that are counts, ratios or settings rather than quantities in the metric's unit:
# latency_ms/n is a sample count, not milliseconds.
_DIMENSIONLESS = frozenset(
    {
        "n",
        "n_groups",
        "n_features",
        "count",
        "fraction",
        "cv",
        "level",
        "confidence",
        "threshold",
        "support",
        "identical",
        "non_finite",
        "k",
    }
)

# Checked in order: "_per_s" must win over "_s".
_UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_per_s", "1/s"),
    ("_ms", "ms"),
    ("_us", "µs"),
    ("_ns", "ns"),
    ("_bytes", "bytes"),
    ("_s", "s"),
)

# Structures that are data, not statistics: they would add hundreds of meaningless rows.
_SKIPPED_KEYS = frozenset({"confusion_matrix", "values"})


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One numeric statistic of one metric of a run."""

    name: str
    statistic: str
    value: float
    unit: str | None


def unit_for(name: str) -> str | None:
    """The unit implied by a metric name's suffix (``load_ms`` -> ``ms``), or ``None``."""
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return None


def _number(value: Any) -> float | None:
    # bool is an int subclass; True is not a statistic.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _key_order(key: Any) -> tuple[int, int, str]:
    # Natural order, so per-class rows read 0, 1, ..., 10 rather than 0, 1, 10, 2.
    text = str(key)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _is_interval_key(key: str, inside_ci: bool) -> bool:
    return inside_ci or key == "ci" or key.endswith("_ci")


def _leaves(
    value: Any, path: tuple[str, ...], inside_ci: bool
) -> Iterator[tuple[tuple[str, ...], float]]:
    """Yield (path, number) for every numeric leaf below ``value``, keys sorted."""
    if isinstance(value, Mapping):
        for key in sorted(value, key=_key_order):
            key_text = str(key)
            if key_text in _SKIPPED_KEYS:
                continue
            yield from _leaves(value[key], (*path, key_text), _is_interval_key(key_text, inside_ci))
        return
    if isinstance(value, list | tuple):
        # Only [low, high] confidence intervals are statistics; other lists are data.
        key = path[-1] if path else ""
        if len(value) == 2 and _is_interval_key(key, inside_ci):
            low, high = _number(value[0]), _number(value[1])
            if low is not None and high is not None:
                yield (*path, "low"), low
                yield (*path, "high"), high
        return
    number = _number(value)
    if number is not None:
        yield path, number


def _rows_for(name: str, value: Any, unit: str | None) -> Iterator[MetricRow]:
    for path, number in _leaves(value, (), inside_ci=name.endswith("_ci")):
        statistic = ".".join(path) if path else "value"
        dimensionless = bool(path) and path[-1] in _DIMENSIONLESS
        yield MetricRow(name, statistic, number, None if dimensionless else unit)


def metric_rows(metrics: Mapping[str, Any]) -> list[MetricRow]:
    """Every finite numeric leaf of a record's ``metrics`` as a row, in a stable order.

    Booleans, ``None``, strings, non-finite numbers, confusion matrices and probe sample
    lists are skipped; ``[low, high]`` pairs under a ``ci`` (or ``*_ci``) key become
    ``.low`` / ``.high`` statistics. A bare scalar metric gets the statistic ``"value"``.
    """
    rows: list[MetricRow] = []
    for name in sorted(metrics):
        value = metrics[name]
        if name == "probes" and isinstance(value, Mapping):
            # Probes declare their own unit; the probe name says nothing about it.
            for probe in sorted(value):
                reading = value[probe]
                if not isinstance(reading, Mapping):
                    continue
                unit = reading.get("unit")
                rows.extend(
                    _rows_for(f"probes.{probe}", reading, unit if isinstance(unit, str) else None)
                )
            continue
        rows.extend(_rows_for(name, value, unit_for(name)))
    return rows


def column_name(row: MetricRow) -> str:
    """The flat-row column of a metric row: ``name.statistic``, or ``name`` for scalars."""
    return row.name if row.statistic == "value" else f"{row.name}.{row.statistic}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _section(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def flat_row(record: Mapping[str, Any]) -> dict[str, str | float | int | None]:
    """One flat row for a run: the :data:`FIXED_COLUMNS`, then one column per metric row."""
    experiment = _section(record, "experiment")
    inputs = _section(record, "inputs")
    error = _section(record, "error")
    target = _section(record, "target") or _section(experiment, "target")
    row: dict[str, str | float | int | None] = {
        "id": _text(record.get("id")),
        "experiment": _text(experiment.get("name")),
        "toolchain": _text(_section(experiment, "toolchain").get("name")),
        "target": _text(target.get("name")),
        "status": _text(record.get("status")),
        "verdict": _text(_section(record, "validity").get("verdict")),
        "provenance": _text(record.get("provenance")),
        "started_at": _text(record.get("started_at")),
        "finished_at": _text(record.get("finished_at")),
        "error_kind": _text(error.get("kind")),
        "model_sha256": _text(inputs.get("model")),
        "dataset_sha256": _text(inputs.get("dataset")),
    }
    for metric in metric_rows(_section(record, "metrics")):
        row[column_name(metric)] = metric.value
    return row


__all__ = ["FIXED_COLUMNS", "MetricRow", "column_name", "flat_row", "metric_rows", "unit_for"]
