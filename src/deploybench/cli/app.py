"""``deploybench`` command line. Exit codes: 0 success, 1 a run failed, 2 a user error."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deploybench import __version__
from deploybench.cli.common import EXIT_RUN_FAILED, err, fail, out
from deploybench.cli.farm import farm_app, reservations_app, scheduler_app, targets_app
from deploybench.cli.lab import lab_app, user_app
from deploybench.cli.runs import runs_app
from deploybench.cli.toolchains import toolchains_app
from deploybench.errors import DeploybenchError

if TYPE_CHECKING:
    from deploybench.services.demo import DemoResult

app = typer.Typer(
    name="deploybench",
    help="Benchmark how machine-learning models behave once deployed on hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="Open problems shipped by deploybench.", no_args_is_help=True)
db_app = typer.Typer(help="The results database.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")
app.add_typer(lab_app)
app.add_typer(user_app, name="user")
app.add_typer(farm_app)
app.add_typer(reservations_app, name="reservations")
app.add_typer(targets_app, name="targets")
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(toolchains_app, name="toolchains")


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
    out().print(table)


@app.command()
def check(
    experiments: Annotated[list[Path], typer.Argument(help="Experiment YAML files.")],
) -> None:
    """Validate experiments and list compatibility findings without running anything."""
    from deploybench.runner import prepare_experiment
    from deploybench.spec import load_experiment

    console = out()
    try:
        for path in experiments:
            prepared = prepare_experiment(load_experiment(path))
            console.print(f"[green]ok[/] {escape(str(path))}: {prepared.experiment.name}")
            for finding in prepared.findings:
                console.print(f"  {escape(finding.render())}", highlight=False)
    except DeploybenchError as exc:
        raise fail(exc) from None


@app.command()
def run(
    experiments: Annotated[list[Path], typer.Argument(help="Experiment YAML files.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each run record as one JSON line.")
    ] = False,
    discard: Annotated[
        bool,
        typer.Option(
            "--discard/--save",
            help="Discard the results (nothing is stored, no artifact is left) or store them "
            "in the results store (default).",
        ),
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Also write records (runs/ID.json) and artifacts here."),
    ] = None,
) -> None:
    """Run experiments: build, measure, check accuracy and semantic preservation."""
    from deploybench.cli.progress import RunProgress
    from deploybench.cli.render import render_record
    from deploybench.runner import prepare_experiment
    from deploybench.services.runs import execute_and_keep
    from deploybench.services.store import open_store
    from deploybench.spec import load_experiment

    console = out()
    failed = False
    try:
        store = None if discard else open_store()
        # Validate and check every experiment before running any, so a typo in the last
        # file does not surface after an hour of measurements.
        prepared = [prepare_experiment(load_experiment(path)) for path in experiments]
        for item in prepared:
            with RunProgress(err, item.experiment.name) as progress:
                finished = execute_and_keep(item, store, progress.update, out=out_dir)
            record = finished.record
            if as_json:
                sys.stdout.write(record.model_dump_json() + "\n")
                sys.stdout.flush()
            else:
                render_record(record, console)
            if finished.stored:
                err.print(f"stored run {record.id}")
            else:
                err.print(f"run {record.id} discarded (nothing stored)")
            failed = failed or record.status == "failed"
    except DeploybenchError as exc:
        raise fail(exc) from None
    if failed:
        raise typer.Exit(EXIT_RUN_FAILED)


@app.command()
def verify(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (or unique prefixes).")],
) -> None:
    """Check a run's record hash and the sha256 of every artifact it references."""
    from deploybench.services.store import open_store

    try:
        store = open_store()
        reports = [store.verify_run(run_id) for run_id in run_ids]
    except DeploybenchError as exc:
        raise fail(exc) from None
    bad = 0
    for report in reports:
        if report.ok:
            out().print(
                f"[green]ok[/] {report.run_id}: record hash and {report.checked} artifacts verified"
            )
            continue
        bad += 1
        out().print(f"[bold red]FAILED[/] {report.run_id}:")
        for problem in report.problems:
            out().print(f"  ✗ {escape(problem)}", highlight=False)
    if bad:
        raise typer.Exit(EXIT_RUN_FAILED)


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL.")] = None,
) -> None:
    """Apply database migrations up to the newest schema."""
    from deploybench.store.database import current_revision, default_url, make_engine, upgrade

    try:
        engine = make_engine(url or default_url())
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    except DeploybenchError as exc:
        raise fail(exc) from None
    err.print(f"database {escape(str(engine.url))}: schema {before or 'empty'} -> {after}")


@db_app.command("status")
def db_status(
    url: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL.")] = None,
) -> None:
    """Schema revision and counts of the results database."""
    from deploybench.services.store import open_store
    from deploybench.store.database import current_revision, head_revision

    try:
        store = open_store(url)
        stats = store.stats()
    except DeploybenchError as exc:
        raise fail(exc) from None
    revision = current_revision(store.engine)
    out().print(
        f"database: {escape(stats['url'])}\nschema: {revision} (newest {head_revision()})\n"
        f"runs: {stats['runs']}\nartifacts: {stats['artifacts']}"
    )


@app.command()
def demo(
    local: Annotated[
        bool,
        typer.Option(
            "--local/--lab",
            help="Run in this process (--local) or, by default, through the embedded lab: "
            "reuse a running `deploybench up` or start one, submit with the client, watch.",
        ),
    ] = False,
) -> None:
    """Run a small campaign on the open problems, store it, print a table, write a report."""
    from deploybench.reports.tables import comparison_table

    console = out()
    try:
        if local:
            result, where = _demo_local()
        else:
            from deploybench.client import Client
            from deploybench.server.embedded import EmbeddedLab
            from deploybench.services.demo import run_demo_via_lab

            with EmbeddedLab() as lab:
                err.print(f"demo campaign submitted to the lab at {lab.url}")
                with Client(lab.url, lab.admin_token) as client:
                    result = run_demo_via_lab(client)
                where = lab.url
    except DeploybenchError as exc:
        raise fail(exc) from None
    console.print(
        comparison_table(
            [r.model_dump(mode="json") for r in result.records],
            "demo campaign: ONNX Runtime configurations on the open problems",
        )
    )
    console.print(f"{len(result.records)} runs stored ({escape(where)})")
    for job in result.failed_jobs:
        console.print(f"[red]job {job['id']} ({escape(job['name'])}) {job['state']}[/]")
    console.print(f"HTML report: {escape(str(result.report))}")
    if result.failed_jobs:
        raise typer.Exit(EXIT_RUN_FAILED)


def _demo_local() -> tuple[DemoResult, str]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from deploybench.services.demo import run_demo
    from deploybench.services.store import open_store

    store = open_store()
    with Progress(
        TextColumn("[bold]demo[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("preparing", total=None)

        def on_experiment(index: int, total: int, name: str) -> None:
            bar.update(task, completed=index, total=total, description=escape(name))

        return run_demo(store, on_experiment), store.url


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
    out().print(table)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
