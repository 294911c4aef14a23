"""Lab commands: serve, up, agent, user add, submit, status."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from deploybench.cli.common import EXIT_RUN_FAILED, err, fail
from deploybench.errors import DeploybenchError, UserError

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


def _serve(settings: object, host: str, port: int, log_json: bool, on_start: object = None) -> None:
    import uvicorn

    from deploybench.server.app import create_app
    from deploybench.server.logging import configure_logging

    configure_logging(json_lines=log_json)
    app = create_app(settings)  # type: ignore[arg-type]
    config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on")
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
) -> None:
    """Run the lab server (REST API, scheduler, lease sweeper)."""
    from deploybench.server.embedded import embedded_settings
    from deploybench.server.settings import ServerSettings

    try:
        base = embedded_settings()
        settings = ServerSettings(db_url=db or base.db_url, data_dir=data_dir or base.data_dir)
        _serve(settings, host, port, log_json)
    except DeploybenchError as exc:
        raise fail(exc) from None


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option(help="user, operator, admin or agent.")] = "user",
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
        user_id = auth.add_user(name, chosen)
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
