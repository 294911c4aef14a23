"""Wait for jobs to reach a final state, optionally with a Rich progress bar."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

FINAL_STATES = ("succeeded", "failed", "aborted")
_ORDER = ("queued", "held", "assigned", "running", "succeeded", "failed", "aborted")


def state_counts(jobs: list[dict[str, Any]]) -> str:
    """``"2 running · 3 succeeded"`` in lifecycle order."""
    counts = Counter(str(job.get("state")) for job in jobs)
    known = [s for s in _ORDER if counts[s]] + sorted(s for s in counts if s not in _ORDER)
    return " · ".join(f"{counts[s]} {s}" for s in known)


def unfinished_message(jobs: list[dict[str, Any]], timeout: float) -> str:
    """The TimeoutError's text: which jobs are still going, and in which state."""
    pending = [j for j in jobs if j.get("state") not in FINAL_STATES]
    listed = ", ".join(f"{j['id']} ({j.get('state')})" for j in pending[:20])
    more = f" and {len(pending) - 20} more" if len(pending) > 20 else ""
    return f"timed out after {timeout:g} s; still unfinished: {listed}{more}"


def wait_for_jobs(
    fetch: Callable[[], list[dict[str, Any]]],
    *,
    progress: bool,
    poll: float,
    timeout: float | None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Call ``fetch`` every ``poll`` seconds until every job it returns is final."""
    deadline = None if timeout is None else time.monotonic() + timeout
    bar: Progress | None = None
    task = None
    if progress:
        bar = Progress(
            TextColumn("[bold]jobs[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        bar.start()
    try:
        while True:
            jobs = fetch()
            done = sum(1 for job in jobs if job.get("state") in FINAL_STATES)
            if bar is not None:
                if task is None:
                    task = bar.add_task(state_counts(jobs), total=len(jobs))
                bar.update(task, completed=done, total=len(jobs), description=state_counts(jobs))
            if done == len(jobs):
                return jobs
            if deadline is not None and time.monotonic() >= deadline:
                assert timeout is not None
                raise TimeoutError(unfinished_message(jobs, timeout))
            pause = poll if deadline is None else min(poll, max(deadline - time.monotonic(), 0))
            sleep(pause)
    finally:
        if bar is not None:
            bar.stop()
