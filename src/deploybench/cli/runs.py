"""``deploybench runs ...``: browse, compare, export, delete, replay and package stored runs."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deploybench.cli.common import EXIT_USER_ERROR, err, fail, out
from deploybench.errors import DeploybenchError, UserError
from deploybench.store.queries import RunFilter

runs_app = typer.Typer(
    help="Browse, compare, export, delete and replay stored runs.", no_args_is_help=True
)

ExperimentOpt = Annotated[str | None, typer.Option("--experiment", "-e", help="Experiment name.")]
ToolchainOpt = Annotated[str | None, typer.Option("--toolchain", help="Toolchain name.")]
TargetOpt = Annotated[str | None, typer.Option("--target", help="Target name.")]
StatusOpt = Annotated[str | None, typer.Option("--status", help="succeeded or failed.")]
SinceOpt = Annotated[
    datetime | None, typer.Option("--since", help="Started at or after (ISO date/time, UTC).")
]
UntilOpt = Annotated[datetime | None, typer.Option("--until", help="Started at or before.")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option("--where", "-w", help="Metric condition, e.g. 'latency_ms.p99<5' (repeatable)."),
]


def _filter(
    experiment: str | None,
    toolchain: str | None,
    target: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    where: list[str] | None,
    limit: int | None = None,
) -> RunFilter:
    from deploybench.store.queries import MetricCondition

    if status is not None and status not in ("succeeded", "failed"):
        raise UserError(f"--status must be succeeded or failed, not '{status}'")
    return RunFilter(
        experiment=experiment,
        toolchain=toolchain,
        target=target,
        status=status,
        since=since.replace(tzinfo=since.tzinfo or UTC) if since else None,
        until=until.replace(tzinfo=until.tzinfo or UTC) if until else None,
        conditions=[MetricCondition.parse(text) for text in where or []],
        limit=limit,
    )


@runs_app.command("list")
def list_runs(
    experiment: ExperimentOpt = None,
    toolchain: ToolchainOpt = None,
    target: TargetOpt = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    where: WhereOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    server: Annotated[
        str | None, typer.Option("--server", help="List a lab server's runs instead.")
    ] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="DEPLOYBENCH_TOKEN")] = None,
) -> None:
    """List stored runs, newest first (here, or on a lab server with --server)."""
    from deploybench.runner.record import RunRecord
    from deploybench.services.store import open_store

    try:
        if server is not None:
            from deploybench.cli.lab import remote_client

            remote = remote_client(server, token).runs(
                experiment=experiment,
                toolchain=toolchain,
                target=target,
                status=status,
                where=where or [],
                limit=limit,
            )
            records = [RunRecord.model_validate(r) for r in remote]
        else:
            store = open_store()
            found = store.list_runs(
                _filter(experiment, toolchain, target, status, since, until, where, limit)
            )
            records = [r.record for r in found]
    except DeploybenchError as exc:
        raise fail(exc) from None
    if as_json:
        for record in records:
            sys.stdout.write(record.model_dump_json() + "\n")
        return
    table = Table(title=f"{len(records)} run(s)")
    for column in (
        "id",
        "experiment",
        "toolchain",
        "target",
        "status",
        "verdict",
        "median",
        "started (UTC)",
    ):
        table.add_column(column)
    for record in records:
        median = record.metrics.get("latency_ms", {}).get("median")
        table.add_row(
            record.id,
            escape(record.experiment["name"]),
            record.experiment["toolchain"]["name"],
            record.experiment["target"]["name"],
            record.status,
            record.validity.verdict,
            f"{median * 1000:.1f} µs" if isinstance(median, float) else "-",
            record.started_at[:19].replace("T", " "),
        )
    out().print(table)


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
    server: Annotated[
        str | None, typer.Option("--server", help="Show a run stored on a lab server.")
    ] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="DEPLOYBENCH_TOKEN")] = None,
) -> None:
    """Show a run's summary, validity verdict and integrity check."""
    from deploybench.cli.render import render_record
    from deploybench.runner.record import RunRecord
    from deploybench.services.store import open_store

    if server is not None:
        from deploybench.cli.lab import remote_client

        try:
            record = RunRecord.model_validate(remote_client(server, token).run(run_id))
        except DeploybenchError as exc:
            raise fail(exc) from None
        if as_json:
            sys.stdout.write(record.model_dump_json(indent=2) + "\n")
        else:
            render_record(record, out())
        err.print("integrity: every artifact was verified by the server when the run was stored")
        return
    try:
        store = open_store()
        stored = store.get_run(run_id)
        report = store.verify_run(stored.record.id)
    except DeploybenchError as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(stored.record.model_dump_json(indent=2) + "\n")
    else:
        render_record(stored.record, out())
        if stored.replay_of:
            out().print(f"replay of run {stored.replay_of}")
    if report.ok:
        err.print(f"[green]integrity: ok[/] ({report.checked} artifacts and the record hash)")
    else:
        err.print("[bold red]integrity: FAILED — these results cannot be trusted as stored:[/]")
        for problem in report.problems:
            err.print(f"  ✗ {escape(problem)}", highlight=False)
        raise typer.Exit(1)


@runs_app.command("compare")
def compare(
    run_ids: Annotated[
        list[str], typer.Argument(help="Two or more run ids; the first is the baseline.")
    ],
) -> None:
    """Side-by-side table; latency ratio to the first run with CI and Mann-Whitney test."""
    from deploybench.reports.tables import comparison_table
    from deploybench.services.runs import compare_runs
    from deploybench.services.store import open_store

    if len(run_ids) < 2:
        raise fail(UserError("give at least two run ids to compare"))
    try:
        store = open_store()
        runs = [store.get_run(run_id) for run_id in run_ids]
        comparisons = compare_runs(store, runs)
    except DeploybenchError as exc:
        raise fail(exc) from None
    console = out()
    console.print(comparison_table([r.record.model_dump(mode="json") for r in runs], "runs"))
    table = Table(title=f"latency against {runs[0].record.id} (ratio of medians, >1 = slower)")
    for column in ("run", "ratio", "CI", "Mann-Whitney p", "difference"):
        table.add_column(column)
    for run, result in zip(runs[1:], comparisons, strict=True):
        if result is None or result.ratio is None:
            why = result.unavailable if result is not None else "no latency samples"
            table.add_row(run.record.id, "n/a", "", "", escape(why or ""))
            continue
        ci = result.ratio_ci
        verdict = "significant" if result.significant else "not significant"
        if result.significant and not result.ratio_ci_excludes_one:
            verdict += " (but the process-clustered CI includes 1)"
        table.add_row(
            run.record.id,
            f"{result.ratio:.3f}",
            f"[{ci[0]:.3f}, {ci[1]:.3f}] @ {result.confidence:.0%}" if ci else "n/a",
            f"{result.p_value:.2g}" if result.p_value is not None else "n/a",
            verdict,
        )
    console.print(table)


@runs_app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, json or parquet.")] = "csv",
    experiment: ExperimentOpt = None,
    toolchain: ToolchainOpt = None,
    target: TargetOpt = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    where: WhereOpt = None,
) -> None:
    """Write one flat row per run with every metric statistic."""
    from deploybench.reports.export import export_runs
    from deploybench.services.store import open_store

    if fmt not in ("csv", "json", "parquet"):
        raise fail(UserError(f"--format must be csv, json or parquet, not '{fmt}'"))
    try:
        store = open_store()
        found = store.list_runs(_filter(experiment, toolchain, target, status, since, until, where))
        path = export_runs([r.record.model_dump(mode="json") for r in found], fmt, output)  # type: ignore[arg-type]
    except DeploybenchError as exc:
        raise fail(exc) from None
    err.print(f"{len(found)} run(s) written to {escape(str(path))}")


@runs_app.command("delete")
def delete(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete runs and the artifacts no other run uses."""
    from deploybench.services.store import open_store

    try:
        store = open_store()
        ids = [store.resolve_id(run_id) for run_id in run_ids]
    except DeploybenchError as exc:
        raise fail(exc) from None
    if not yes:
        if not sys.stdin.isatty():
            err.print(
                "[bold red]error:[/] refusing to delete without confirmation; "
                "pass --yes to delete non-interactively"
            )
            raise typer.Exit(EXIT_USER_ERROR)
        if not typer.confirm(f"Delete {len(ids)} run(s): {', '.join(ids)}?"):
            err.print("nothing deleted")
            raise typer.Exit(EXIT_USER_ERROR)
    deleted, removed = store.delete_runs(ids)
    err.print(f"deleted {len(deleted)} run(s); removed {len(removed)} unreferenced artifact(s)")


@runs_app.command("replay")
def replay(
    run_id: Annotated[str, typer.Argument(help="Run to replay.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the new record as JSON.")] = False,
) -> None:
    """Run again from the stored definition and stored input artifacts; store the new run."""
    from deploybench.cli.progress import RunProgress
    from deploybench.cli.render import render_record
    from deploybench.services.runs import replay as replay_run
    from deploybench.services.store import open_store

    try:
        store = open_store()
        original = store.get_run(run_id)
        with RunProgress(err, f"replay of {original.record.id}") as progress:
            finished = replay_run(store, original.record.id, progress.update)
    except DeploybenchError as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(finished.record.model_dump_json() + "\n")
    else:
        render_record(finished.record, out())
    err.print(f"stored run {finished.record.id} (replay of {original.record.id})")
    if finished.record.status == "failed":
        raise typer.Exit(1)


@runs_app.command("package")
def package(
    run_id: Annotated[str, typer.Argument(help="Run to package.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Zip file to write.")],
) -> None:
    """Write a reproduction package: definition, inputs, package lock, environment, README,
    run script and Dockerfile."""
    from deploybench.services.package import write_package
    from deploybench.services.store import open_store

    try:
        store = open_store()
        path = write_package(store, run_id, output)
    except DeploybenchError as exc:
        raise fail(exc) from None
    err.print(f"reproduction package written to {escape(str(path))}")
