"""Filters for listing runs, including metric conditions such as ``latency_ms.p99<5``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from deploybench.errors import UserError

_CONDITION = re.compile(
    r"^\s*(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)\s*(?P<op><=|>=|==|!=|<|>|=)\s*(?P<value>\S+)\s*$"
)
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class MetricCondition:
    """``key op value`` where key is ``name.statistic`` as in the metrics table
    (``latency_ms.p99``, ``accuracy.accuracy``) or a bare scalar metric (``load_ms``)."""

    key: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> MetricCondition:
        """Parse ``latency_ms.p99<5``; a malformed condition says what is expected."""
        match = _CONDITION.match(text)
        if not match:
            raise UserError(
                f"cannot read the metric condition '{text}'; write NAME.STATISTIC OP NUMBER, "
                "e.g. 'latency_ms.p99<5' or 'accuracy.accuracy>=0.9'"
            )
        try:
            value = float(match["value"])
        except ValueError:
            raise UserError(
                f"metric condition '{text}': '{match['value']}' is not a number"
            ) from None
        return cls(match["key"], match["op"], value)


@dataclass(frozen=True)
class RunFilter:
    """What ``runs list`` narrows down by; every field is optional."""

    experiment: str | None = None
    toolchain: str | None = None
    target: str | None = None
    status: str | None = None
    owner: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    conditions: list[MetricCondition] = field(default_factory=list)
    limit: int | None = None
