"""Shared pieces of the command line: consoles, exit codes, error reporting."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from deploybench.errors import DeploybenchError, UserError

EXIT_RUN_FAILED = 1
EXIT_USER_ERROR = 2

err = Console(stderr=True)

# Tables of runs are wide; when output goes to a file or a pipe there is no terminal width to
# honour, so use one that keeps each row on a line.
_PIPE_WIDTH = 180


def out() -> Console:
    """Console for standard output: the terminal's width, or a wide one when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=_PIPE_WIDTH)


def fail(exc: DeploybenchError) -> typer.Exit:
    """Print the error and return the Exit to raise: 2 for user errors, 1 otherwise."""
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USER_ERROR if isinstance(exc, UserError) else EXIT_RUN_FAILED)
