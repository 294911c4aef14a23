"""One-row-per-run comparison of run records, as plain strings and as a Rich table.

:func:`summary_rows` is the single source of the comparison's wording; the Rich table and
the HTML report both render it, so the terminal and the report never disagree.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

#: Column headers of the comparison, in order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "configuration",
    "median latency (CI)",
    "p99",
    "throughput",
    "peak RSS",
    "accuracy / R²",
    "semantic preservation (CI)",
    "validity",
)

NOT_AVAILABLE = "n/a"
UNAVAILABLE = "unavailable"

# Short runtime names keep labels readable in narrow terminals and plot legends.
_SHORT_TOOLCHAIN_NAMES = {"onnxruntime": "ort"}
# The settings that matter most for a deployment come first, in this order.
_LEADING_CONFIG_KEYS = ("quantization", "graph_optimization")


def _section(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = mapping.get(key)
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = _number(value[0]), _number(value[1])
        if low is not None and high is not None:
            return low, high
    return None


def is_unavailable(section: Any) -> bool:
    """True for a metric section that says why it could not be measured."""
    return isinstance(section, Mapping) and isinstance(section.get("unavailable"), str)


def format_ms(value: float) -> str:
    """A latency in milliseconds, in the unit that keeps it readable."""
    if value < 1:
        return f"{value * 1000:.1f} µs"
    if value < 1000:
        return f"{value:.3f} ms"
    return f"{value / 1000:.3f} s"


def format_pct(value: float) -> str:
    """A fraction as a percentage with two decimals."""
    return f"{value * 100:.2f} %"


# An en dash between interval bounds reads as a range, unlike a hyphen next to numbers.
_DASH = "\u2013"


def _with_interval(value: str, low: str, high: str) -> str:
    # "16.3 µs [11.8 to 16.4 µs]" (with a dash) rather than repeating a shared unit thrice.
    low_number, _, low_unit = low.rpartition(" ")
    high_number, _, high_unit = high.rpartition(" ")
    if low_unit == high_unit and low_number and high_number:
        return f"{value} [{low_number}{_DASH}{high_number} {high_unit}]"
    return f"{value} [{low}{_DASH}{high}]"


def config_summary(record: Mapping[str, Any]) -> str:
    """The toolchain and its settings, e.g. ``"ort · dynamic-int8 · all · 1 thr"``."""
    experiment = _section(record, "experiment")
    toolchain = _section(experiment, "toolchain")
    name = str(toolchain.get("name") or "?")
    parts = [_SHORT_TOOLCHAIN_NAMES.get(name, name)]
    config = _section(toolchain, "config")
    keys = [k for k in _LEADING_CONFIG_KEYS if k in config]
    keys += sorted(k for k in config if k not in _LEADING_CONFIG_KEYS)
    for key in keys:
        value = config[key]
        if key in _LEADING_CONFIG_KEYS and isinstance(value, str | int | float):
            parts.append(str(value))
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            parts.append(f"{key}={value}")
        elif value is True:
            parts.append(key)
    threads = _section(experiment, "environment").get("threads")
    if isinstance(threads, int) and not isinstance(threads, bool):
        parts.append(f"{threads} thr")
    return " · ".join(parts)


def config_label(record: Mapping[str, Any]) -> str:
    """The run's configuration label: its experiment name, else :func:`config_summary`."""
    name = _section(record, "experiment").get("name")
    return name if isinstance(name, str) and name.strip() else config_summary(record)


def run_state(record: Mapping[str, Any]) -> str:
    """``"failed"``, ``"valid"`` or ``"invalid"``: what the validity column is styled by."""
    if record.get("status") == "failed":
        return "failed"
    verdict = _section(record, "validity").get("verdict")
    return verdict if isinstance(verdict, str) else "invalid"


def _latency_cells(metrics: Mapping[str, Any]) -> tuple[str, str]:
    latency = metrics.get("latency_ms")
    if is_unavailable(latency):
        return UNAVAILABLE, UNAVAILABLE
    if not isinstance(latency, Mapping):
        return NOT_AVAILABLE, NOT_AVAILABLE
    median, p99 = _number(latency.get("median")), _number(latency.get("p99"))
    median_text = NOT_AVAILABLE
    if median is not None:
        median_text = format_ms(median)
        ci = _interval(_section(latency, "ci").get("median"))
        if ci is not None:
            median_text = _with_interval(median_text, format_ms(ci[0]), format_ms(ci[1]))
    return median_text, format_ms(p99) if p99 is not None else NOT_AVAILABLE


def _quality_cell(metrics: Mapping[str, Any]) -> str:
    for key in ("accuracy", "regression"):
        section = metrics.get(key)
        if is_unavailable(section):
            return UNAVAILABLE
        if not isinstance(section, Mapping):
            continue
        if (accuracy := _number(section.get("accuracy"))) is not None:
            return format_pct(accuracy)
        if (iou := _number(section.get("mean_iou"))) is not None:
            return f"mIoU {iou:.4f}"
        if (r2 := _number(section.get("r2"))) is not None:
            return f"R² {r2:.4f}"
        if section.get("r2_unavailable"):
            return UNAVAILABLE
    return NOT_AVAILABLE


def _semantic_cell(metrics: Mapping[str, Any]) -> str:
    semantic = metrics.get("semantic_preservation")
    if is_unavailable(semantic):
        return UNAVAILABLE
    if not isinstance(semantic, Mapping):
        return NOT_AVAILABLE
    ratio = _number(semantic.get("ratio"))
    if ratio is None:
        return NOT_AVAILABLE
    ci = _interval(semantic.get("ci"))
    if ci is None:
        return format_pct(ratio)
    return _with_interval(format_pct(ratio), format_pct(ci[0]), format_pct(ci[1]))


def _validity_cell(record: Mapping[str, Any]) -> str:
    if record.get("status") == "failed":
        kind = _section(record, "error").get("kind")
        return f"failed ({kind})" if isinstance(kind, str) else "failed"
    return run_state(record)


def summary_row(record: Mapping[str, Any]) -> dict[str, str]:
    """The comparison cells of one run, keyed by :data:`SUMMARY_COLUMNS`."""
    metrics = _section(record, "metrics")
    median, p99 = _latency_cells(metrics)
    throughput = _number(metrics.get("throughput_per_s"))
    peak_rss = _number(metrics.get("peak_rss_bytes"))
    cells = (
        config_label(record),
        median,
        p99,
        f"{throughput:,.0f}/s" if throughput is not None else NOT_AVAILABLE,
        f"{peak_rss / 2**20:.1f} MiB" if peak_rss is not None else NOT_AVAILABLE,
        _quality_cell(metrics),
        _semantic_cell(metrics),
        _validity_cell(record),
    )
    return dict(zip(SUMMARY_COLUMNS, cells, strict=True))


def summary_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """:func:`summary_row` for each record, in order."""
    return [summary_row(record) for record in records]


def comparison_html(records: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as an HTML ``<table>``; every cell is escaped (user text)."""

    def cell(text: object) -> str:
        return html.escape(str(text), quote=True)

    head = "".join(f"<th>{cell(column)}</th>" for column in SUMMARY_COLUMNS)
    body = []
    for record in records:
        row = summary_row(record)
        cells = [
            f"{cell(row['configuration'])}<br><small>{cell(config_summary(record))}"
            f" · run {cell(record.get('id'))}</small>"
        ]
        cells += [cell(row[column]) for column in SUMMARY_COLUMNS[1:-1]]
        cells.append(f'<span class="{cell(run_state(record))}">{cell(row["validity"])}</span>')
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_STATE_STYLES = {"valid": "bold green", "invalid": "bold yellow", "failed": "bold red"}


def comparison_table(records: Sequence[Mapping[str, Any]], title: str) -> Table:
    """A Rich table comparing runs, one row per run (missing values read ``n/a``)."""
    table = Table(title=Text(title))
    for column in SUMMARY_COLUMNS:
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for record in records:
        row = summary_row(record)
        # Text cells, never markup strings: experiment names are user text.
        label = Text(row["configuration"])
        summary = config_summary(record)
        if summary != row["configuration"]:
            label.append(f"\n{summary}", style="dim")
        cells: list[Text] = [label]
        cells += [Text(row[column]) for column in SUMMARY_COLUMNS[1:-1]]
        cells.append(Text(row["validity"], style=_STATE_STYLES.get(run_state(record), "")))
        table.add_row(*cells)
    return table


__all__ = [
    "NOT_AVAILABLE",
    "SUMMARY_COLUMNS",
    "UNAVAILABLE",
    "comparison_html",
    "comparison_table",
    "config_label",
    "config_summary",
    "format_ms",
    "format_pct",
    "is_unavailable",
    "run_state",
    "summary_row",
    "summary_rows",
]
