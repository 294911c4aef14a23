"""A self-contained HTML report comparing runs: summary, latency and quality figures, validity.

The file works offline: plotly.js is inlined once and nothing is fetched from the network.
Every piece of user text (title, experiment names, reasons, errors) goes through
:func:`html.escape`, including the labels handed to plotly, which renders entities literally.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from deploybench import __version__
from deploybench.reports.export import atomic_path
from deploybench.reports.tables import comparison_html, config_label, config_summary, run_state

#: Upper bound on the samples plotted per run (the brief's file-size budget).
MAX_POINTS_LIMIT = 5000
LATENCY_FIGURE_ID = "latency-distribution"
QUALITY_FIGURE_ID = "quality-vs-latency"

# plotly.js alone is about 4.8 MB, so the plotted samples must stay small for 20 runs to fit
# in 5 MB; 500 evenly spaced order statistics place each quartile within 0.2 percentile.
_DEFAULT_POINTS = 500
# Pooled latencies spanning more than this factor are drawn on a log axis.
_LOG_RANGE = 30.0

_PROVENANCE_NOTES = {
    "measured": "timed on the target itself by deploybench's harness (wall-clock)",
    "simulated": "produced by a simulator; not wall-clock time on hardware",
    "estimated": "computed by an analytical model; not a measurement",
    "predicted": "predicted by a learned model; not a measurement",
}

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2933}"
    "table{border-collapse:collapse;font-size:.9rem}small{color:#616e7c}"
    "th,td{border:1px solid #cbd2d9;padding:.3rem .6rem;text-align:right}"
    "th:first-child,td:first-child{text-align:left}.valid,.invalid,.failed{font-weight:bold}"
    ".valid{color:#1b7f3b}.invalid{color:#b7791f}.failed{color:#c53030}"
)

Samples = Mapping[str, npt.NDArray[Any]]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class _Run(NamedTuple):
    """A run as plotted: its record, a unique label and a colour shared by both figures."""

    record: Mapping[str, Any]
    label: str
    color: str


def _runs(records: Sequence[Mapping[str, Any]]) -> list[_Run]:
    from plotly.colors import qualitative

    labels = [config_label(record) for record in records]
    counts = Counter(labels)
    palette = qualitative.Plotly
    return [
        # Plot categories must be unique: two runs of one experiment get their ids appended.
        _Run(
            record,
            f"{label} [{record.get('id')}]" if counts[label] > 1 else label,
            palette[index % len(palette)],
        )
        for index, (record, label) in enumerate(zip(records, labels, strict=True))
    ]


def _pair(value: Any) -> list[float] | None:
    numbers = isinstance(value, list) and len(value) == 2
    if numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return None


def _median(record: Mapping[str, Any]) -> tuple[float, list[float] | None] | None:
    """(median latency in ms, its [low, high] CI or None), or None when there is none."""
    latency = record.get("metrics", {}).get("latency_ms")
    if not isinstance(latency, Mapping) or not isinstance(latency.get("median"), float | int):
        return None
    ci = latency.get("ci")
    return float(latency["median"]), _pair(ci.get("median")) if isinstance(ci, Mapping) else None


def _quality(record: Mapping[str, Any], key: str) -> tuple[float, list[float] | None] | None:
    """(value, CI or None) of ``accuracy`` or ``semantic_preservation``, or None."""
    section = record.get("metrics", {}).get(key)
    value_key, ci_key = ("accuracy", "accuracy_ci") if key == "accuracy" else ("ratio", "ci")
    if not isinstance(section, Mapping) or not isinstance(section.get(value_key), float | int):
        return None
    return float(section[value_key]), _pair(section.get(ci_key))


def _order_statistics(samples: Samples, points: int) -> npt.NDArray[np.float64]:
    """Evenly spaced order statistics of all repetitions pooled, in nanoseconds.

    Unlike a random subsample these keep the minimum, the maximum and every quantile.
    """
    arrays = [np.asarray(a, dtype=np.float64).ravel() for a in samples.values()]
    pooled = np.sort(np.concatenate(arrays)) if arrays else np.empty(0)
    if pooled.size <= points:
        return pooled
    return pooled[np.linspace(0, pooled.size - 1, points).round().astype(np.int64)]


def _unit(records: Sequence[Mapping[str, Any]]) -> tuple[str, float]:
    """One latency unit for the whole report (µs when every median is below 1 ms)."""
    medians = [median[0] for record in records if (median := _median(record)) is not None]
    return ("ms", 1.0) if medians and max(medians) >= 1 else ("µs", 1000.0)


# The look of plotly_white in a few keys: a full template repeats ~9 KB of JSON per figure.
_AXIS = {"gridcolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "automargin": True}
_TEMPLATE = {"layout": {"plot_bgcolor": "white", "xaxis": _AXIS, "yaxis": _AXIS}}


def _div(figure: Any, div_id: str, **layout: Any) -> str:
    figure.layout.template = _TEMPLATE  # assigned, not updated: updating merges the default
    figure.update_layout(**layout)
    return str(figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id))


def _latency_figure(
    runs: list[_Run], latencies: Mapping[str, Samples], points: int, unit: tuple[str, float]
) -> str | None:
    import plotly.graph_objects as go

    figure = go.Figure()
    low, high = np.inf, 0.0
    for run in runs:
        samples = latencies.get(str(run.record.get("id")), {})
        values = _order_statistics(samples, points) / 1e6 * unit[1]  # ns -> ms -> unit
        if values.size == 0:
            continue
        low, high = min(low, float(values[0])), max(high, float(values[-1]))
        # Four significant digits are far below the measurement noise and halve the size.
        rounded = [float(f"{v:.4g}") for v in values]
        figure.add_trace(
            go.Box(y=rounded, name=_e(run.label), boxpoints="outliers", marker_color=run.color)
        )
    if not figure.data:
        return None
    return _div(
        figure,
        LATENCY_FIGURE_ID,
        title="Latency distribution per configuration",
        yaxis_title=f"latency per inference ({unit[0]})",
        yaxis_type="log" if low > 0 and high / low > _LOG_RANGE else "linear",
        showlegend=False,
    )


def _error_bar(value: float, interval: list[float] | None) -> dict[str, Any] | None:
    if interval is None:
        return None
    high, low = max(interval[1] - value, 0.0), max(value - interval[0], 0.0)
    return {"type": "data", "symmetric": False, "array": [high], "arrayminus": [low]}


def _quality_figure(runs: list[_Run], unit: tuple[str, float]) -> str | None:
    import plotly.graph_objects as go

    timed = [run for run in runs if _median(run.record) is not None]
    # Accuracy whenever a run has one (classification); runs without it (regression: R² is in
    # the table) are left out. With no accuracy at all, semantic preservation, which every
    # task has.
    with_accuracy = [run for run in timed if _quality(run.record, "accuracy")]
    key = "accuracy" if with_accuracy else "semantic_preservation"
    left_out = len(timed) - len(with_accuracy) if with_accuracy else 0
    figure = go.Figure()
    for run in timed:
        quality, median = _quality(run.record, key), _median(run.record)
        if quality is None or median is None:
            continue
        x = median[0] * unit[1]
        x_ci = [bound * unit[1] for bound in median[1]] if median[1] else None
        hover = (run.label, config_summary(run.record), run_state(run.record))
        figure.add_trace(
            go.Scatter(
                x=[x],
                y=[quality[0]],
                name=_e(run.label),
                mode="markers",
                marker={"size": 11, "color": run.color},
                hovertext=["<br>".join(_e(line) for line in hover)],
                hoverinfo="text+x+y",
                error_x=_error_bar(x, x_ci),
                error_y=_error_bar(quality[0], quality[1]),
            )
        )
    if not figure.data:
        return None
    name = key.replace("_", " ")
    note = f" ({left_out} run(s) without an accuracy are only in the table)" if left_out else ""
    return _div(
        figure,
        QUALITY_FIGURE_ID,
        title=f"{name.capitalize()} vs median latency{note}",
        xaxis_title=f"median latency ({unit[0]}); bars: confidence intervals",
        yaxis_title=name,
        yaxis_tickformat=".1%",
    )


def _items(title: str, entries: Any) -> str:
    if not isinstance(entries, list) or not entries:
        return ""
    items = "".join(f"<li>{_e(entry)}</li>" for entry in entries)
    return f"<p>{_e(title)}:</p><ul>{items}</ul>"


def _validity_section(runs: list[_Run]) -> str:
    parts = []
    for record, label, _ in runs:
        validity = record.get("validity") or {}
        state = run_state(record)
        error = record.get("error") or {}
        failure = (
            f"<p class='failed'>failed ({_e(error.get('kind'))}): {_e(error.get('message'))}</p>"
            if record.get("status") == "failed"
            else ""
        )
        parts.append(
            f"<h3>{_e(label)} <span class='{_e(state)}'>{_e(validity.get('verdict'))}</span></h3>"
            + failure
            + _items("reasons", validity.get("reasons"))
            + _items("warnings", validity.get("warnings"))
            + _items("recommendations", validity.get("recommendations"))
        )
    return "".join(parts)


def _provenance_note(records: Sequence[Mapping[str, Any]]) -> str:
    counts = Counter(str(record.get("provenance", "measured")) for record in records)
    items = "".join(
        f"<li><b>{_e(kind)}</b> ({count} run{'s' if count != 1 else ''}): "
        f"{_e(_PROVENANCE_NOTES.get(kind, 'see the run record for how it was obtained'))}</li>"
        for kind, count in sorted(counts.items())
    )
    return f"<p>Every number carries the provenance of its run:</p><ul>{items}</ul>"


def write_html_report(
    records: Sequence[Mapping[str, Any]],
    latencies: Mapping[str, Mapping[str, npt.NDArray[Any]]],
    path: Path,
    title: str,
    *,
    max_points: int = _DEFAULT_POINTS,
) -> Path:
    """Write one self-contained, offline HTML report comparing ``records`` to ``path``.

    ``latencies`` maps a run id to its raw samples (repetition name -> nanoseconds); runs
    without samples are left out of the distribution figure. At most ``max_points``
    (≤ 5,000) order statistics per run are plotted, to keep the file small.
    """
    from plotly.offline import get_plotlyjs

    points = max(2, min(max_points, MAX_POINTS_LIMIT))
    runs = _runs(records)
    unit = _unit(records)
    latency = _latency_figure(runs, latencies, points, unit)
    quality = _quality_figure(runs, unit)
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    no_data = "<p><small>no data to plot</small></p>"
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<header><h1>{_e(title)}</h1>
<p>Generated {_e(generated)} by deploybench {_e(__version__)} · {len(records)} run(s)</p></header>
<section id="summary"><h2>Summary</h2>{comparison_html(records)}</section>
<section id="latency"><h2>Latency</h2>{latency or no_data}
<p><small>Each box pools all repetitions of a run; up to {points} evenly spaced order
statistics of its samples are plotted.</small></p></section>
<section id="quality"><h2>Quality against speed</h2>{quality or no_data}</section>
<section id="validity"><h2>Validity</h2>{_validity_section(runs)}</section>
<section id="provenance"><h2>Provenance</h2>{_provenance_note(records)}</section>
</body></html>
"""
    path = Path(path)
    with atomic_path(path) as target:
        target.write_text(document, encoding="utf-8")
    return path


__all__ = ["LATENCY_FIGURE_ID", "MAX_POINTS_LIMIT", "QUALITY_FIGURE_ID", "write_html_report"]
