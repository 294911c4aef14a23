"""Readable summaries of run records for the terminal (presentation only)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from deploybench.runner.record import RunRecord


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 1:
        return f"{value * 1000:.1f} µs"
    return f"{value:.3f} ms"


def _interval(pair: list[float] | tuple[float, float] | None, fmt: Any = _ms) -> str:
    if not pair:
        return "n/a"
    return f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def _bytes(value: int | None) -> str:
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{value} B"


def _pct(value: float) -> str:
    return f"{value * 100:.2f} %"


def _unavailable(section: dict[str, Any]) -> str | None:
    reason = section.get("unavailable")
    return f"unavailable: {reason}" if isinstance(reason, str) else None


def _latency_table(metrics: dict[str, Any]) -> Table:
    latency = metrics["latency_ms"]
    ci = latency.get("ci", {})
    level = ci.get("level", 0.95)
    origin = latency.get("provenance")
    table = Table(
        title="Latency (one inference of one batch)",
        caption=f"provenance: {origin}" if origin else None,
        show_edge=False,
    )
    table.add_column("statistic")
    table.add_column("value", justify="right")
    table.add_column(f"{level:.0%} CI", justify="right")
    table.add_row("median", _ms(latency["median"]), _interval(ci.get("median")))
    table.add_row("mean", _ms(latency["mean"]), _interval(ci.get("mean")))
    for key in ("p90", "p95", "p99"):
        table.add_row(key, _ms(latency.get(key)), _interval(ci.get(key)))
    table.add_row("min / max", f"{_ms(latency['min'])} / {_ms(latency['max'])}", "")
    cv = latency.get("cv")
    table.add_row(
        "std / CV", f"{_ms(latency['std'])} / {_pct(cv) if cv is not None else 'n/a'}", ""
    )
    outliers = latency.get("outliers", {})
    table.add_row("samples", f"{latency['n']} ({outliers.get('count', 0)} outliers)", "")
    runtime = metrics.get("runtime_latency_ms")
    if isinstance(runtime, dict) and "median" in runtime:
        table.add_row(
            "median, runtime-reported",
            _ms(runtime["median"]),
            _interval(runtime.get("ci", {}).get("median")),
        )
    return table


def _resources_table(metrics: dict[str, Any]) -> Table:
    table = Table(title="Start-up, throughput, memory", show_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("load", _ms(metrics.get("load_ms")))
    table.add_row("first inference", _ms(metrics.get("first_inference_ms")))
    throughput = metrics.get("throughput_per_s")
    table.add_row("throughput", f"{throughput:,.0f} samples/s" if throughput else "n/a")
    table.add_row("peak RSS (process)", _bytes(metrics.get("peak_rss_bytes")))
    table.add_row("RSS before model load", _bytes(metrics.get("baseline_rss_bytes")))
    table.add_row("deployed model size", _bytes(metrics.get("model_size_bytes")))
    return table


def _embedded_table(metrics: dict[str, Any]) -> Table:
    """Flash, RAM, stack, instructions and simulated cycles of a firmware run."""
    table = Table(title="Firmware footprint and instructions", show_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("provenance")
    footprint = metrics.get("footprint")
    if isinstance(footprint, dict):
        origin = str(footprint.get("provenance", ""))
        # A Linux binary has no flash or RAM budget: the same sections, named for what they are.
        board = bool(footprint.get("regions"))
        code, data = ("flash", "RAM") if board else ("binary", "static data")
        table.add_row(f"{code} (text + data)", _bytes(footprint.get("flash_bytes")), origin)
        table.add_row(f"{data} (data + bss)", _bytes(footprint.get("ram_bytes")), origin)
        table.add_row("  of which arena", _bytes(footprint.get("arena_bytes")), "generated")
        table.add_row("weights (const)", _bytes(footprint.get("weights_bytes")), "generated")
        table.add_row("stack (worst path)", _bytes(footprint.get("stack_bytes")), "static analysis")
        table.add_row(
            "  of which the model", _bytes(footprint.get("model_stack_bytes")), "static analysis"
        )
        for region in footprint.get("regions", []):
            table.add_row(
                f"{region['name']} used",
                f"{_bytes(region['used_bytes'])} / {_bytes(region['capacity_bytes'])} "
                f"({_pct(region['share'])})",
                origin,
            )
    instructions = metrics.get("instructions")
    if isinstance(instructions, dict) and "per_inference" in instructions:
        table.add_row(
            "instructions / inference",
            f"{instructions['per_inference']:,.0f}",
            str(instructions.get("provenance", "")),
        )
    cycles = metrics.get("cycles")
    if isinstance(cycles, dict):
        missing = _unavailable(cycles)
        if missing:
            table.add_row("cycles / inference", missing, "")
        else:
            table.add_row(
                "cycles / inference",
                f"{cycles['per_inference']:,.0f} (CPI {cycles['cpi']:.2f})",
                str(cycles.get("provenance", "")),
            )
    return table


def _functional_table(metrics: dict[str, Any]) -> Table:
    table = Table(title="Functional metrics", show_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("CI", justify="right")
    accuracy = metrics.get("accuracy")
    if isinstance(accuracy, dict):
        missing = _unavailable(accuracy)
        if missing:
            table.add_row("accuracy", missing, "")
        elif "accuracy" in accuracy:
            table.add_row(
                "accuracy",
                _pct(accuracy["accuracy"]),
                _interval(accuracy.get("accuracy_ci"), _pct),
            )
            table.add_row("F1 (macro)", f"{accuracy['f1_macro']:.4f}", "")
        elif "mean_iou" in accuracy:
            table.add_row("mean IoU", f"{accuracy['mean_iou']:.4f}", "")
    reference = metrics.get("reference_accuracy")
    if isinstance(reference, dict) and "accuracy" in reference:
        table.add_row("reference accuracy", _pct(reference["accuracy"]), "")
    regression = metrics.get("regression")
    if isinstance(regression, dict):
        missing = _unavailable(regression)
        if missing:
            table.add_row("regression", missing, "")
        else:
            for key in ("mse", "mae", "rmse", "r2", "adjusted_r2"):
                value = regression.get(key)
                table.add_row(key, f"{value:.4f}" if value is not None else "n/a", "")
    semantic = metrics.get("semantic_preservation")
    if isinstance(semantic, dict):
        table.add_row(
            f"semantic preservation ({semantic['distance']} ≤ {semantic['threshold']:g})",
            f"{semantic['identical']}/{semantic['n']} = {_pct(semantic['ratio'])}",
            _interval(semantic.get("ci"), _pct),
        )
    return table


def render_record(record: RunRecord, console: Console) -> None:
    """Print a run record as tables plus its validity verdict."""
    experiment = record.experiment
    title = (
        f"run {record.id} · {experiment['name']} · {experiment['toolchain']['name']} on "
        f"{experiment['target']['name']} · {record.provenance}"
    )
    parts: list[Any] = []
    if record.status == "failed" and record.error is not None:
        parts.append(
            Text(f"FAILED ({record.error.kind}): {record.error.message}", style="bold red")
        )
    metrics = record.metrics
    latency = metrics.get("latency_ms")
    if isinstance(latency, dict) and "median" in latency:
        parts.append(_latency_table(metrics))
    elif isinstance(latency, dict) and _unavailable(latency):
        parts.append(Text(f"latency {_unavailable(latency)}", style="yellow"))
    if "footprint" in metrics or "instructions" in metrics:
        parts.append(_embedded_table(metrics))
    elif "latency_ms" in metrics:
        parts.append(_resources_table(metrics))
    if any(k in metrics for k in ("accuracy", "regression", "semantic_preservation")):
        parts.append(_functional_table(metrics))
    validity = record.validity
    style = "bold green" if validity.verdict == "valid" else "bold yellow"
    parts.append(Text(f"validity: {validity.verdict}", style=style))
    for reason in validity.reasons:
        parts.append(Text(f"  ✗ {reason}", style="yellow"))
    for warning in validity.warnings:
        parts.append(Text(f"  ! {warning}", style="dim"))
    for recommendation in validity.recommendations:
        parts.append(Text(f"  → {recommendation}", style="cyan"))
    console.print(Panel(Group(*parts), title=title, title_align="left"))
