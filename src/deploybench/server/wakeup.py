"""Wake long-polls and event streams when something changes, from any thread."""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    """A broadcast signal: ``notify()`` from worker threads wakes every current waiter."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop (at start-up)."""
        self._loop = loop
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Thread-safe: wake everyone waiting now."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        if self._event is not None:
            self._event.set()
        self._event = asyncio.Event()  # later waiters wait for the next change

    async def wait(self, timeout: float) -> None:
        """Until the next notify or the timeout, whichever comes first."""
        event = self._event
        if event is None:
            await asyncio.sleep(timeout)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
