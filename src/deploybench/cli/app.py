"""``deploybench`` command line. Exit codes: 0 success, 1 a run failed, 2 a user error."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deploybench import __version__
from deploybench.errors import DeploybenchError, UserError

app = typer.Typer(
    name="deploybench",
    help="Benchmark how machine-learning models behave once deployed on hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="Open problems shipped by deploybench.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")

EXIT_RUN_FAILED = 1
EXIT_USER_ERROR = 2

err = Console(stderr=True)


def _fail(exc: DeploybenchError) -> typer.Exit:
    err.print(
        f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True
    )
    return typer.Exit(EXIT_USER_ERROR if isinstance(exc, UserError) else EXIT_RUN_FAILED)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"deploybench {__version__}")
        raise typer.Exit(0)


@app.command()
def schema() -> None:
    """Print the JSON Schema of experiment files."""
    from deploybench.spec import experiment_json_schema

    typer.echo(json.dumps(experiment_json_schema(), indent=2))


@app.command()
def plugins() -> None:
    """List toolchains, targets and probes with their versions and availability."""
    from deploybench.plugins import list_plugins

    table = Table(title="deploybench plugins")
    for column in ("kind", "name", "plugin version", "tool version", "available", "note"):
        table.add_column(column)
    for row in list_plugins():
        available = row.availability.available
        table.add_row(
            row.kind.value,
            row.name,
            f"{row.distribution or '-'} {row.version or ''}".strip(),
            row.tool_version or "-",
            "[green]yes[/]" if available else "[red]no[/]",
            escape(row.availability.reason or ""),
        )
    Console().print(table)


@app.command()
def check(
    experiments: Annotated[list[Path], typer.Argument(help="Experiment YAML files.")],
) -> None:
    """Validate experiments and list compatibility findings without running anything."""
    from deploybench.runner import prepare_experiment
    from deploybench.spec import load_experiment

    console = Console()
    try:
        for path in experiments:
            prepared = prepare_experiment(load_experiment(path))
            console.print(f"[green]ok[/] {escape(str(path))}: {prepared.experiment.name}")
            for finding in prepared.findings:
                console.print(f"  {escape(finding.render())}", highlight=False)
    except DeploybenchError as exc:
        raise _fail(exc) from None


@app.command()
def run(
    experiments: Annotated[list[Path], typer.Argument(help="Experiment YAML files.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each run record as one JSON line.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write records (runs/ID.json) and artifacts here."),
    ] = None,
    keep_workdir: Annotated[
        bool, typer.Option("--keep-workdir", help="Keep the run's work directory.")
    ] = False,
) -> None:
    """Run experiments: build, measure, check accuracy and semantic preservation."""
    from deploybench.cli.progress import RunProgress
    from deploybench.cli.render import render_record
    from deploybench.runner import prepare_experiment
    from deploybench.runner.artifacts import export_to_folder
    from deploybench.runner.experiment import execute_prepared, new_workdir
    from deploybench.spec import load_experiment

    console = Console()
    failed = False
    try:
        # Validate and check every experiment before running any, so a typo in the last
        # file does not surface after an hour of measurements.
        prepared = [prepare_experiment(load_experiment(path)) for path in experiments]
        for item in prepared:
            with RunProgress(err, item.experiment.name) as progress:
                outcome = execute_prepared(item, new_workdir(), progress.update)
            record = outcome.record
            try:
                if out is not None:
                    path = export_to_folder(
                        record.model_dump_json(indent=2),
                        record.id,
                        record.artifacts,
                        outcome.artifacts,
                        out,
                    )
                    err.print(f"record written to {escape(str(path))}")
                if as_json:
                    sys.stdout.write(record.model_dump_json() + "\n")
                    sys.stdout.flush()
                else:
                    render_record(record, console)
            finally:
                if keep_workdir:
                    err.print(f"work directory kept: {escape(str(outcome.workdir))}")
                else:
                    shutil.rmtree(outcome.workdir, ignore_errors=True)
            failed = failed or record.status == "failed"
    except DeploybenchError as exc:
        raise _fail(exc) from None
    if failed:
        raise typer.Exit(EXIT_RUN_FAILED)


@zoo_app.command("list")
def zoo_list() -> None:
    """List the open models and datasets."""
    from deploybench import zoo

    table = Table(title="open problems (use as zoo:NAME)")
    for column in ("name", "kind", "task", "default dataset", "needs", "description"):
        table.add_column(column)
    for model in zoo.list_models():
        table.add_row(
            model.name,
            "model",
            model.task.value,
            model.default_dataset,
            ", ".join(model.requires) or "-",
            model.description,
        )
    for dataset in zoo.list_datasets():
        table.add_row(dataset.name, "dataset", dataset.task.value, "-", "-", dataset.description)
    Console().print(table)


def main() -> None:
    """Console-script entry point."""
    app()
