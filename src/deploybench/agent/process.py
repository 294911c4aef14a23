"""The measurement runs in its own process, so the agent can always stop it.

``python -m deploybench.agent.execute`` runs in a new session (its own process group); to
abort it the agent sends SIGTERM to the group and to every descendant (the harness starts
its workers in sessions of their own), then SIGKILL to whatever is left after a grace
period. The agent itself never loads a runtime, so a crashing runtime cannot take it down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psutil

PROGRESS_PREFIX = "@@progress "
"""Lines the execute process prints for the runner's ``progress(phase, done, total)``."""


def _signal_tree(procs: list[psutil.Process], group: int | None, sig: signal.Signals) -> None:
    if group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def kill_tree(
    pid: int, grace: float, started: float | None = None, child: subprocess.Popen[str] | None = None
) -> None:
    """SIGTERM a process, its group and its descendants; SIGKILL the rest after ``grace`` s.

    ``started`` (the process's create time) guards against a recycled pid: a process that
    started at another time is not ours and is left alone. ``child``: the process is our own
    child, reaped through Popen so its exit status stays known.
    """
    try:
        root = psutil.Process(pid)
        if started is not None and abs(root.create_time() - started) > 0.5:
            return
        descendants = root.children(recursive=True)
    except psutil.Error:
        return
    _signal_tree([root, *descendants], pid, signal.SIGTERM)
    others = descendants if child is not None else [root, *descendants]
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=grace)
    _, alive = psutil.wait_procs(others, timeout=grace if child is None else 0.5)
    if child is not None and child.poll() is None:
        alive.append(root)
    if alive:
        _signal_tree(alive, pid, signal.SIGKILL)
        psutil.wait_procs([p for p in alive if p is not root or child is None], timeout=5.0)
    # Anything left in the group that was not a descendant (double fork) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if child is not None:
        child.wait()


def _spawn_waiting() -> subprocess.Popen[str]:
    """An execute process that imports everything, then waits for its job on stdin."""
    return subprocess.Popen(
        [sys.executable, "-m", "deploybench.agent.execute", "--wait"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )


class ExecutorPool:
    """Keeps one execute process started ahead of time, so its interpreter start-up and
    imports (seconds) happen while the agent waits for work, not between submit and result.
    Each job still gets a fresh process: the spare is used once, then replaced."""

    def __init__(self) -> None:
        self._spare: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start a spare if there is none alive."""
        with self._lock:
            if self._spare is None or self._spare.poll() is not None:
                self._spare = _spawn_waiting()

    def take(self) -> subprocess.Popen[str]:
        """The spare (or a new process when it died); the pool forgets it."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None:
            spare = _spawn_waiting()
        return spare

    def close(self) -> None:
        """Stop the spare."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None:
            return
        if spare.poll() is None:
            kill_tree(spare.pid, 1.0, None, spare)
        for pipe in (spare.stdin, spare.stdout):
            if pipe is not None:
                pipe.close()


class Measurement:
    """One execute process; its output lines go to ``on_line`` as they come."""

    def __init__(
        self,
        job_file: Path,
        outcome_file: Path,
        on_line: Callable[[str], None],
        process: subprocess.Popen[str] | None = None,
    ):
        self.outcome_file = outcome_file
        self._process = process or _spawn_waiting()
        # The job goes in on stdin: the process may have been started before the job existed.
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(f"{job_file}\t{outcome_file}\n")
            self._process.stdin.close()
        except BrokenPipeError:
            pass  # it died while waiting: wait() reports the exit, the agent an infra failure
        try:
            self.started: float | None = psutil.Process(self._process.pid).create_time()
        except psutil.Error:
            self.started = None
        self._reader = threading.Thread(
            target=self._read, args=(on_line,), name="measurement-output", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        """The execute process's pid (and process group id)."""
        return self._process.pid

    def _read(self, on_line: Callable[[str], None]) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            on_line(line.rstrip("\n"))

    def wait(self) -> int:
        """Wait for the process and its output; returns its exit code (negative: signal)."""
        code = self._process.wait()
        self._reader.join(timeout=5.0)
        return code

    def stop(self, grace: float) -> None:
        """Abort the measurement (safe to call from another thread, or twice)."""
        if self._process.poll() is None:
            kill_tree(self._process.pid, grace, self.started, self._process)
