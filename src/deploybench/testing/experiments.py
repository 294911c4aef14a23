"""Small, fast experiments for integration tests of toolchains and targets."""

from __future__ import annotations

from typing import Any

from deploybench.spec import Experiment, parse_experiment

# Enough to exercise every phase in well under a second per repetition.
FAST_PLAN: dict[str, Any] = {
    "profile": "quick",
    "warmup_runs": 3,
    "warmup_seconds": 0.0,
    "min_iterations": 30,
    "min_duration": 0.05,
    "max_duration": 5.0,
    "repetitions": 2,
    "timeout": 120.0,
}


def make_experiment(
    model: str = "zoo:digits-mlp",
    dataset: str = "zoo:digits",
    toolchain: str = "onnxruntime",
    config: dict[str, Any] | None = None,
    **sections: Any,
) -> Experiment:
    """An experiment dict with the fast plan, validated like a YAML file would be."""
    data: dict[str, Any] = {
        "name": sections.pop("name", "test"),
        "problem": {"model": model, "dataset": dataset},
        "toolchain": {"name": toolchain, "config": config or {}},
        "environment": {"threads": 1},
        "measurement": {**FAST_PLAN, **sections.pop("measurement", {})},
    }
    data.update(sections)
    return parse_experiment(data)
