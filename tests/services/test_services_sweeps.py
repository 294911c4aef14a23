"""Sweeps expand to the cartesian product of their grid, each a full definition."""

from __future__ import annotations

import pytest

from deploybench.errors import SpecError
from deploybench.services.sweeps import Sweep, expand_sweep
from deploybench.spec import parse_experiment

BASE = {
    "name": "mlp",
    "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
    "toolchain": {"name": "onnxruntime", "config": {"graph_optimization": "all"}},
}


def test_grid_expands_to_named_valid_experiments() -> None:
    sweep = Sweep(
        base=BASE,
        grid={
            "toolchain.config.quantization": ["none", "dynamic-int8"],
            "environment.threads": [1, 2],
        },
    )
    expanded = expand_sweep(sweep)
    assert [e["name"] for e in expanded] == [
        "mlp-none-1",
        "mlp-none-2",
        "mlp-dynamic-int8-1",
        "mlp-dynamic-int8-2",
    ]
    for definition in expanded:
        experiment = parse_experiment(definition)
        assert experiment.toolchain.config["graph_optimization"] == "all"  # base kept
    assert expanded[3]["environment"] == {"threads": 2}
    assert BASE["toolchain"]["config"] == {"graph_optimization": "all"}  # base not mutated


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"bad path!": [1]}, "not a dotted field path"),
        ({"environment.threads": []}, "at least one value"),
        ({"name.x": [1]}, "not a mapping"),
        ({"a": list(range(100)), "b": list(range(100))}, "limit is 1000"),
    ],
)
def test_bad_grids_are_refused(grid: dict[str, list[object]], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        expand_sweep(Sweep(base=BASE, grid=grid))
