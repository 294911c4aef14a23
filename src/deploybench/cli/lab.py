"""Lab commands: serve, up, agent, user add, submit, status."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from deploybench.cli.common import EXIT_RUN_FAILED, err, fail
from deploybench.errors import DeploybenchError, UserError

if TYPE_CHECKING:
    from deploybench.client import Client
    from deploybench.server.settings import ServerSettings

lab_app = typer.Typer(add_completion=False)
user_app = typer.Typer(help="Users and their API tokens.", no_args_is_help=True)

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", envvar="DEPLOYBENCH_SERVER", help="Server URL (default: `up`'s)."),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="DEPLOYBENCH_TOKEN", help="API token (default: `up`'s)."),
]


def _serve(settings: ServerSettings, host: str, port: int, log_json: bool) -> None:
    import uvicorn

    from deploybench.server.app import create_app
    from deploybench.server.logging import configure_logging

    configure_logging(json_lines=log_json)
    app = create_app(settings)
    # Agents hold long-polls open: do not wait on them for long when shutting down.
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, lifespan="on", timeout_graceful_shutdown=2
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal into the
    # handlers that were there before it started: make those no-ops, so the caller's clean-up
    # (stopping the local agent) runs and the process exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, frame: None)
    uvicorn.Server(config).run()


@lab_app.command()
def serve(
    db: Annotated[
        str | None,
        typer.Option("--db", help="SQLAlchemy URL (default: SQLite in the data folder)."),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Artifact folder.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    log_json: Annotated[bool, typer.Option("--log-json", help="JSON-lines logs.")] = False,
    lease_ttl: Annotated[
        float, typer.Option("--lease-ttl", help="Seconds before a silent agent's run is re-queued.")
    ] = 30.0,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="server.yaml: any ServerSettings field, e.g. notices."),
    ] = None,
) -> None:
    """Run the lab server (REST API, scheduler, lease sweeper)."""
    from deploybench.server.embedded import embedded_settings

    try:
        base = embedded_settings()
        values = _read_config(config) if config else {}
        values.setdefault("lease_ttl", lease_ttl)
        values.setdefault("sweep_interval", min(2.0, float(str(values["lease_ttl"])) / 4))
        values["db_url"] = db or values.get("db_url") or base.db_url
        values["data_dir"] = data_dir or values.get("data_dir") or base.data_dir
        settings = _validated_settings(values, config)
        _serve(settings, host, port, log_json)
    except DeploybenchError as exc:
        raise fail(exc) from None


def _read_config(path: Path) -> dict[str, object]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read server config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"server config {path}: the top level must be a mapping")
    return data


def _validated_settings(values: dict[str, object], source: Path | None) -> ServerSettings:
    from pydantic import ValidationError

    from deploybench.server.settings import ServerSettings
    from deploybench.spec.loading import format_validation_error

    try:
        return ServerSettings.model_validate(values)
    except ValidationError as exc:
        lines = format_validation_error(exc, ServerSettings)
        raise UserError(
            f"server config {source or ''} is invalid:\n  " + "\n  ".join(lines)
        ) from None


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option(help="user, operator, admin or agent.")] = "user",
    email: Annotated[str | None, typer.Option(help="Where completion notices are mailed.")] = None,
    webhook: Annotated[
        str | None, typer.Option(help="URL that receives completion notices (POST).")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL.")] = None,
) -> None:
    """Create a user in the lab database and print a new API token (shown once)."""
    from sqlalchemy.orm import sessionmaker

    from deploybench.services.auth import AuthService, Role
    from deploybench.services.store import open_store

    try:
        try:
            chosen = Role(role)
        except ValueError:
            raise UserError(f"unknown role '{role}'; use user, operator, admin or agent") from None
        store = open_store(db)
        auth = AuthService(sessionmaker(store.engine, expire_on_commit=False))
        user_id = auth.add_user(name, chosen, email=email, webhook_url=webhook)
        _, token = auth.issue_token(user_id, "cli")
    except DeploybenchError as exc:
        raise fail(exc) from None
    err.print(f"user {escape(name)} ({chosen.value}) created; its API token (shown once):")
    sys.stdout.write(token + "\n")


@lab_app.command()
def up(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    log_json: Annotated[bool, typer.Option("--log-json", help="JSON-lines logs.")] = False,
) -> None:
    """Start the embedded lab: server on 127.0.0.1, SQLite here, one local agent."""
    from sqlalchemy.orm import sessionmaker

    from deploybench.paths import data_home
    from deploybench.server.embedded import (
        LabCredentials,
        LocalAgentProcess,
        embedded_settings,
        read_credentials,
        start_agent_when_up,
        write_credentials,
    )
    from deploybench.services.auth import AuthService, Role
    from deploybench.services.store import open_store

    url = f"http://127.0.0.1:{port}"
    try:
        settings = embedded_settings()
        credentials = read_credentials()
        if credentials is None:
            store = open_store(settings.db_url)
            auth = AuthService(sessionmaker(store.engine, expire_on_commit=False))
            admin = (
                auth.add_user("admin", Role.ADMIN)
                if not auth.has_users()
                else auth.user_id("admin")
            )
            admin_token = auth.issue_token(admin, "up")[1]
            agent = auth.add_user("local-agent", Role.AGENT)
            credentials = LabCredentials(url, admin_token, auth.issue_token(agent, "up")[1])
            path = write_credentials(credentials)
            store.close()
            err.print(f"first start: admin user created. Its token (also in {escape(str(path))}):")
            sys.stdout.write(credentials.admin_token + "\n")
        elif credentials.url != url:
            credentials = LabCredentials(url, credentials.admin_token, credentials.agent_token)
            write_credentials(credentials)
        err.print(f"deploybench lab at {url} (API docs: {url}/api/v1/docs); Ctrl-C stops it")
        agent_process = LocalAgentProcess(
            url, credentials.agent_token, "local", data_home() / "agent.log"
        )
        failed = threading.Event()
        threading.Thread(
            target=start_agent_when_up, args=(url, agent_process, failed), daemon=True
        ).start()
        try:
            _serve(settings, "127.0.0.1", port, log_json)
        finally:
            agent_process.stop()
        if failed.is_set():
            raise typer.Exit(EXIT_RUN_FAILED)
        err.print("deploybench lab stopped")
    except DeploybenchError as exc:
        raise fail(exc) from None


def remote_client(server: str | None, token: str | None):  # type: ignore[no-untyped-def]
    """A client for --server/--token, else the embedded lab's (from `deploybench up`)."""
    from deploybench.client import Client
    from deploybench.server.embedded import read_credentials

    if server is None or token is None:
        local = read_credentials()
        if local is None:
            raise UserError(
                "no server given: pass --server URL --token TOKEN (or set DEPLOYBENCH_SERVER "
                "and DEPLOYBENCH_TOKEN), or start the embedded lab with `deploybench up`"
            )
        server, token = server or local.url, token or local.admin_token
    return Client(server, token)


@lab_app.command()
def submit(
    experiments: Annotated[list[Path], typer.Argument(help="Experiment YAML files.")],
    name: Annotated[str | None, typer.Option("--name", help="Campaign name.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait and show progress.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Submit experiments to a lab server as one campaign (validated before queueing)."""
    try:
        client = remote_client(server, token)
        submission = client.submit([str(p) for p in experiments], name=name)
        err.print(
            f"campaign {submission.campaign}: {len(submission.jobs)} job(s) queued on {client.url}"
        )
        sys.stdout.write(submission.campaign + "\n")
        if wait:
            jobs = client.wait(submission.campaign, progress=True)
            _print_jobs(jobs)
            if any(job["state"] != "succeeded" for job in jobs):
                raise typer.Exit(EXIT_RUN_FAILED)
    except DeploybenchError as exc:
        raise fail(exc) from None


def _print_jobs(jobs: list[dict[str, object]]) -> None:
    from rich.table import Table

    from deploybench.cli.common import out

    table = Table(title=f"{len(jobs)} job(s)")
    for column in ("job", "experiment", "owner", "state", "attempt", "target", "phase", "run"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            *(
                escape(str(job.get(key) or "-"))
                for key in ("id", "name", "owner", "state", "attempt", "target", "phase", "run_id")
            )
        )
    out().print(table)


@lab_app.command()
def status(
    campaign: Annotated[
        str | None, typer.Argument(help="Campaign or job id (default: all).")
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Jobs on a lab server: state, attempt, target, phase and resulting run."""
    try:
        client = remote_client(server, token)
        jobs = client.jobs(campaign=campaign) if campaign else client.jobs()
        if campaign and not jobs:
            jobs = [client.job(campaign)]
    except DeploybenchError as exc:
        raise fail(exc) from None
    _print_notices(client)
    _print_jobs(jobs)


def _print_notices(client: Client) -> None:
    """Operators' broadcasts and a paused scheduler, above the jobs (skipped quietly when the
    server is older and has neither)."""
    from deploybench.cli.common import out
    from deploybench.cli.render_farm import paused_banner, print_broadcasts

    console = out()
    try:
        paused = client.scheduler().get("paused")
        broadcasts = client.broadcasts()
    except DeploybenchError:
        return
    banner = paused_banner(paused)
    if banner is not None:
        console.print(banner)
    print_broadcasts(broadcasts, console)


@lab_app.command()
def agent(
    server: Annotated[
        str, typer.Option("--server", envvar="DEPLOYBENCH_SERVER", help="Server URL.")
    ],
    token: Annotated[str, typer.Option("--token", envvar="DEPLOYBENCH_TOKEN", help="Agent token.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Agent name (default: host name).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="agent.yaml.")] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="JSON-lines logs.")] = False,
) -> None:
    """Run an agent: register this host's targets, pull work, run it, upload results."""
    from deploybench.agent import run_agent
    from deploybench.server.logging import configure_logging

    configure_logging(json_lines=log_json)
    try:
        run_agent(server, token, name, config)
    except DeploybenchError as exc:
        raise fail(exc) from None


@lab_app.command()
def logs(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """A job's timestamped actions and agent log lines (build, deploy, run, upload)."""
    try:
        client = remote_client(server, token)
        events = client.events(job=job_id) if follow else client.logs(job_id)
        for event in events:
            sys.stdout.write(f"{event['ts']} {event['kind']:<9} {event['message']}\n")
            sys.stdout.flush()
    except DeploybenchError as exc:
        raise fail(exc) from None
