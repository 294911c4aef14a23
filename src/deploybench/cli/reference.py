"""Generate the CLI reference (docs/cli.md) from the commands' own --help.

``python -m deploybench.cli.reference > docs/cli.md`` (``make docs``); a test fails when the
committed file differs, so the reference never drifts from the code.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.testing import CliRunner

from deploybench.cli.app import app


def _commands(group: Any, prefix: list[str]) -> list[list[str]]:
    # Typer ships its own click; groups are recognised by having sub-commands.
    found: list[list[str]] = [prefix]
    for name in sorted(group.commands):
        command = group.commands[name]
        if hasattr(command, "commands"):
            found += _commands(command, [*prefix, name])
        else:
            found.append([*prefix, name])
    return found


def render() -> str:
    """Markdown with one section per command: its --help output, as plain text."""
    root = typer.main.get_command(app)
    runner = CliRunner()
    # Fixed width and no colour: the output must not depend on the terminal.
    env = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    parts = [
        "# Command-line reference",
        "",
        "Generated from `--help` by `python -m deploybench.cli.reference` (`make docs`).",
        "",
    ]
    for path in _commands(root, []):
        result = runner.invoke(app, [*path, "--help"], env=env, color=False)
        title = " ".join(["deploybench", *path])
        text = "\n".join(line.rstrip() for line in result.output.strip().splitlines())
        parts += [f"## `{title}`", "", "```text", text, "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "100")
    print(render(), end="")
