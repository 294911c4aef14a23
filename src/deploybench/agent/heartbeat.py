"""The heartbeat thread of a running job: keeps the lease, carries logs and cancels.

Every beat first sends the log lines gathered since the last one (so the server shows them
within a beat), then ``POST /jobs/{id}/heartbeat``. A cancel in the answer, or a 409 (the
lease is gone), is handed to ``on_cancel`` which stops the measurement. Connection errors are
only logged: the next beat tries again, and a restarted server renews leases itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from deploybench.client.agent_api import AgentApi
from deploybench.client.errors import ServerError, ServerUnreachableError
from deploybench.services.lab import FenceError

log = logging.getLogger(__name__)

FENCED = "fenced"
"""The reason given to ``on_cancel`` when the server answered 409."""


def stamp(phase: str, message: str) -> str:
    """A log line as the server stores it: UTC time, phase, message."""
    return f"{datetime.now(UTC).isoformat(timespec='milliseconds')} [{phase}] {message}"


class Heartbeat(threading.Thread):
    """Beats every ``interval`` s (and at once when the phase changes) until stopped."""

    def __init__(
        self,
        api: AgentApi,
        job_id: str,
        epoch: int,
        interval: float,
        on_cancel: Callable[[str], None],
    ) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.api, self.job_id, self.epoch = api, job_id, epoch
        self.interval = interval
        self.on_cancel = on_cancel
        self.phase = "assigned"
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()

    def set_phase(self, phase: str) -> None:
        """Report a new phase now rather than at the next beat."""
        if phase != self.phase:
            self.phase = phase
            self.log(f"phase {phase}")
            self._wake.set()

    def log(self, message: str) -> None:
        """Queue a timestamped log line for the next beat."""
        with self._lock:
            self._lines.append(stamp(self.phase, message))

    def flush(self) -> None:
        """Send the queued log lines; they stay queued if the server cannot be reached."""
        with self._lock:
            lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            self.api.post_log(self.job_id, self.epoch, lines)
        except FenceError:
            self.on_cancel(FENCED)
        except (ServerUnreachableError, ServerError) as exc:
            log.warning("could not send log lines of %s: %s", self.job_id, exc)
            with self._lock:
                self._lines[:0] = lines

    def beat(self) -> None:
        """One heartbeat (with the pending log lines)."""
        self.flush()
        try:
            cancel = self.api.heartbeat(self.job_id, self.epoch, self.phase)
        except FenceError:
            self.on_cancel(FENCED)
            return
        except (ServerUnreachableError, ServerError) as exc:
            log.warning("heartbeat of %s failed: %s; trying again", self.job_id, exc)
            return
        if cancel:
            self.on_cancel(cancel)

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.beat()
            except Exception:  # never let the lease die silently with this thread
                log.exception("heartbeat of %s failed unexpectedly", self.job_id)
            self._wake.wait(self.interval)
            self._wake.clear()

    def stop(self) -> None:
        """Stop beating and send the remaining log lines (safe to call twice)."""
        self._stopped.set()
        self._wake.set()
        if self.is_alive():
            self.join()
        self.flush()
