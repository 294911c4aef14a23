"""``deploybench toolchains ...``: installed versions, cached environments, prepare, guides."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deploybench.cli.common import EXIT_RUN_FAILED, err, fail, out
from deploybench.errors import DeploybenchError, UserError

toolchains_app = typer.Typer(
    help="Toolchains: installed versions, environments for other versions, guides.",
    invoke_without_command=True,
)


@toolchains_app.callback()
def toolchains_list(ctx: typer.Context) -> None:
    """List toolchains with their installed version, availability and cached environments."""
    if ctx.invoked_subcommand is not None:
        return
    from deploybench.plugins import PluginKind, list_plugins
    from deploybench.toolchains.envs import list_environments

    try:
        environments = list_environments()
    except DeploybenchError as exc:
        raise fail(exc) from None
    table = Table(title="deploybench toolchains")
    for column in ("name", "installed version", "available", "environments", "note"):
        table.add_column(column)
    for row in list_plugins(PluginKind.TOOLCHAIN):
        mine = [e for e in environments if e.toolchain == row.name]
        envs = ", ".join(
            f"{e.versions.get(_main_distribution(row.name) or '', '?')} ({e.state})" for e in mine
        )
        table.add_row(
            row.name,
            row.tool_version or "-",
            "[green]yes[/]" if row.availability.available else "[red]no[/]",
            envs or "-",
            escape(row.availability.reason or ""),
        )
    others = [e for e in environments if e.toolchain is None]
    console = out()
    console.print(table)
    for environment in others:
        console.print(
            f"environment {environment.key[:12]} ({environment.state}): "
            f"{escape(' '.join(environment.requirements) or '-')}",
            highlight=False,
        )


def _main_distribution(name: str) -> str | None:
    from deploybench.plugins import PluginKind, load_plugin

    try:
        distribution: str | None = load_plugin(PluginKind.TOOLCHAIN, name).distribution
    except (DeploybenchError, AttributeError):
        return None
    return distribution


def _split(spec: str) -> tuple[str, str | None]:
    """``NAME``, ``NAME==1.2`` or ``NAME>=1.2,<2`` -> (name, constraint or None)."""
    for index, char in enumerate(spec):
        if char in "=<>!~":
            return spec[:index].strip(), spec[index:].strip() or None
    return spec.strip(), None


@toolchains_app.command("prepare")
def toolchains_prepare(
    spec: Annotated[
        str, typer.Argument(help="NAME, NAME==VERSION or NAME with a PEP 440 constraint.")
    ],
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print the installer's output as it runs.")
    ] = False,
) -> None:
    """Build (or reuse) the environment running a toolchain at a version, ahead of time."""
    from deploybench.plugins import PluginKind, load_plugin
    from deploybench.toolchains.envs import (
        EnvironmentBuildError,
        resolve_version,
        toolchain_environment,
    )

    name, constraint = _split(spec)
    try:
        cls = load_plugin(PluginKind.TOOLCHAIN, name)
        if constraint is None:
            constraint = f"=={resolve_version(cls, '>=0')}"
        console = out()
        with console.status(f"preparing {escape(name)} {escape(constraint)} ...") as status:

            def log(line: str) -> None:
                if verbose:
                    console.print(escape(line), highlight=False)
                elif line.strip():
                    status.update(f"{escape(name)} {escape(constraint)}: {escape(line[:100])}")

            environment = toolchain_environment(cls, constraint, log=log)
    except EnvironmentBuildError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    except DeploybenchError as exc:
        raise fail(exc) from None
    versions = ", ".join(f"{k} {v}" for k, v in environment.versions.items())
    console.print(
        f"[green]ready[/]: {escape(name)} ({escape(versions)}) in {escape(str(environment.path))}",
        highlight=False,
        soft_wrap=True,
    )


@toolchains_app.command("show")
def toolchains_show(
    name: Annotated[str, typer.Argument(help="Toolchain name.")],
) -> None:
    """Print a toolchain's guide and the JSON Schema of its configuration."""
    from deploybench.plugins import PluginKind, load_plugin
    from deploybench.toolchains.guides import guide

    try:
        cls = load_plugin(PluginKind.TOOLCHAIN, name)
        description = cls().describe()
    except DeploybenchError as exc:
        raise fail(exc) from None
    except Exception as exc:  # a plugin that cannot even describe itself
        raise fail(UserError(f"toolchain '{name}' cannot describe itself: {exc}")) from None
    console = out()
    text = guide(cls)
    console.print(
        text if text is not None else f"# {name}\n\n{description.summary}\n\n(no guide shipped)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print("\n## Configuration schema (toolchain.config)\n", markup=False)
    console.print(
        json.dumps(description.config_schema, indent=2),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
