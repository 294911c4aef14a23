"""Campaign sweeps: one base definition and a grid of values, expanded to experiments."""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deploybench.errors import SpecError

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_SWEEP_SIZE = 1000


class Sweep(BaseModel):
    """``grid`` maps dotted paths (``toolchain.config.quantization``) to the values to try;
    the campaign is the cartesian product applied to ``base``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: dict[str, Any]
    grid: dict[str, list[Any]] = Field(min_length=1)


def _label(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip("-") or "x"


def expand_sweep(sweep: Sweep) -> list[dict[str, Any]]:
    """Every combination as a full definition, named ``base-name-value-value...``."""
    for path, values in sweep.grid.items():
        if not _PATH.match(path):
            raise SpecError(f"sweep.grid: '{path}' is not a dotted field path")
        if not values:
            raise SpecError(f"sweep.grid.{path}: give at least one value")
    size = 1
    for values in sweep.grid.values():
        size *= len(values)
    if size > MAX_SWEEP_SIZE:
        raise SpecError(f"sweep expands to {size} experiments; the limit is {MAX_SWEEP_SIZE}")
    paths = list(sweep.grid)
    expanded: list[dict[str, Any]] = []
    for combination in itertools.product(*(sweep.grid[p] for p in paths)):
        definition = copy.deepcopy(sweep.base)
        for path, value in zip(paths, combination, strict=True):
            node = definition
            *parents, leaf = path.split(".")
            for key in parents:
                child = node.setdefault(key, {})
                if not isinstance(child, dict):
                    raise SpecError(
                        f"sweep.grid: '{path}' goes through '{key}', which is not a mapping"
                    )
                node = child
            node[leaf] = value
        definition["name"] = "-".join(
            [str(sweep.base.get("name", "sweep")), *(_label(v) for v in combination)]
        )[:128]
        expanded.append(definition)
    return expanded
