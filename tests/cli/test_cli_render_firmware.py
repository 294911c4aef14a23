"""The terminal summary of a simulator run: footprint, instructions, simulated or unavailable
latency, each with where the number comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from deploybench.cli.render import render_record
from deploybench.testing.records import make_record

FOOTPRINT: dict[str, Any] = {
    "provenance": "measured",
    "flash_bytes": 82_000,
    "ram_bytes": 8_900,
    "weights_bytes": 15_272,
    "arena_bytes": 6_144,
    "stack_bytes": 1_300,
    "model_stack_bytes": 120,
    "regions": [
        {"name": "flash", "used_bytes": 82_000, "capacity_bytes": 262_144, "share": 0.3128},
        {"name": "ram", "used_bytes": 10_200, "capacity_bytes": 65_536, "share": 0.1556},
    ],
}


def _render(tmp_path: Path, metrics: dict[str, Any]) -> str:
    record, _ = make_record(tmp_path, target="qemu-cortex-m")
    record = record.model_copy(update={"metrics": metrics, "provenance": "simulated"})
    console = Console(record=True, width=160)
    render_record(record, console)
    return console.export_text()


def test_a_board_run_shows_its_memories_instructions_and_simulated_latency(
    tmp_path: Path,
) -> None:
    latency = {
        "n": 2,
        "median": 66.5,
        "mean": 66.5,
        "min": 66.5,
        "max": 66.5,
        "std": 0.0,
        "cv": 0.0,
        "p90": 66.5,
        "p95": 66.5,
        "p99": 66.5,
        "ci": {"level": 0.95},
        "provenance": "simulated",
    }
    text = _render(
        tmp_path,
        {
            "latency_ms": latency,
            "footprint": FOOTPRINT,
            "instructions": {"per_inference": 1_330_094, "provenance": "simulated"},
            "cycles": {"per_inference": 1_662_618, "cpi": 1.25, "provenance": "simulated"},
        },
    )
    assert "provenance: simulated" in text
    assert "flash used" in text and "31.28 %" in text
    assert "1,330,094" in text and "CPI 1.25" in text
    assert "of which the model" in text


def test_an_aarch64_run_says_why_latency_is_unavailable(tmp_path: Path) -> None:
    reason = "no cycle model for aarch64: qemu-aarch64 user mode runs no core model"
    footprint = {**FOOTPRINT, "regions": []}
    text = _render(
        tmp_path,
        {
            "latency_ms": {"unavailable": reason},
            "footprint": footprint,
            "instructions": {"per_inference": 1_179_654, "provenance": "simulated"},
            "cycles": {"unavailable": reason},
        },
    )
    assert f"latency unavailable: {reason}" in text
    assert "binary (text + data)" in text and "flash" not in text
