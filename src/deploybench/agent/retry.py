"""Retry HTTP calls with exponential back-off, so a server restart does not kill the agent."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from deploybench.client.errors import ServerError, ServerUnreachableError

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries (None: until ``halt``), waiting ``initial`` s, then ``factor`` times
    longer each time up to ``maximum`` s, with ±20 % jitter so a farm of agents does not
    reconnect in lock-step after a server restart."""

    attempts: int | None = 5
    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delays(self) -> Callable[[], float]:
        """A fresh sequence of delays."""
        state = {"next": self.initial}

        def step() -> float:
            delay = state["next"]
            state["next"] = min(delay * self.factor, self.maximum)
            return delay * random.uniform(0.8, 1.2)

        return step


def is_transient(exc: BaseException) -> bool:
    """Errors a later try may not see: no connection, or a proxy/server outage (502-504)."""
    if isinstance(exc, ServerUnreachableError):
        return True
    return isinstance(exc, ServerError) and exc.transient


def retrying(
    call: Callable[[], T],
    backoff: Backoff,
    halt: threading.Event | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """``call()``, retried on transient errors; other errors propagate at once.

    Gives up (re-raising the last error) after ``backoff.attempts`` tries or when ``halt`` is
    set. The waits use ``halt.wait`` so a shutdown is not delayed by a back-off.
    """
    halt = halt or threading.Event()
    next_delay = backoff.delays()
    tries = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            tries += 1
            if (backoff.attempts is not None and tries >= backoff.attempts) or halt.is_set():
                raise
            delay = next_delay()
            if on_retry is not None:
                on_retry(exc, delay)
            if halt.wait(delay):
                raise
