"""Rich progress display driven by the runner's ``progress(phase, done, total)`` callback."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

_LABELS = {
    "resolve": "resolve problem and check",
    "build": "build (deployment pipeline)",
    "reference": "reference run",
    "functional": "functional pass",
    "repetitions": "measured repetitions",
    "metrics": "statistics and metrics",
}


class RunProgress:
    """One bar per phase; transient so only the summary stays on screen."""

    def __init__(self, console: Console, name: str) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn(f"[bold]{name}[/] {{task.description}}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, phase: str, done: int, total: int) -> None:
        """Runner callback."""
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(_LABELS.get(phase, phase), total=total)
        self._progress.update(self._tasks[phase], completed=done, total=total)
