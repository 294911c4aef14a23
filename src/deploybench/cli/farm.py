"""Farm commands: queue, usage, reservations, targets, scheduler, broadcast, and job controls
(start, priority, stop, resume, abort). Thin layers over :class:`deploybench.Client`."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from deploybench.cli.common import err, fail, out
from deploybench.cli.lab import ServerOpt, TokenOpt, remote_client
from deploybench.errors import DeploybenchError, UserError

if TYPE_CHECKING:
    from deploybench.client import Client

farm_app = typer.Typer(add_completion=False)
reservations_app = typer.Typer(
    help="Reserve a target (or every target with some tags) for a time window.",
    no_args_is_help=True,
)
targets_app = typer.Typer(
    help="The farm's targets: health, enabling, maintenance, retirement, tags.",
    no_args_is_help=True,
)
scheduler_app = typer.Typer(help="Pause and resume the lab's scheduler.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer.")]
IdentArg = Annotated[str, typer.Argument(help="Job or campaign id.")]
TargetArg = Annotated[str, typer.Argument(help="Target name, e.g. `host/local`.")]


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Turn deploybench errors into the CLI's message and exit code (2 user, 1 failure)."""
    try:
        yield
    except DeploybenchError as exc:
        raise fail(exc) from None


def _client(server: str | None, token: str | None) -> Client:
    client: Client = remote_client(server, token)
    return client


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _time(text: str, option: str) -> datetime:
    """An ISO 8601 time from the command line; without a time zone it is local time."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{option} '{text}' is not an ISO 8601 time; write e.g. 2030-06-01T14:00 (local "
            "time) or 2030-06-01T14:00+00:00"
        ) from None
    return when if when.tzinfo else when.astimezone()


def _hours(value: float, option: str = "--hours") -> float:
    if value <= 0:
        raise UserError(f"{option} must be more than 0 (got {value:g})")
    return value


# -- queue and usage ------------------------------------------------------------------------


@farm_app.command()
def queue(as_json: JsonOpt = False, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """The farm now: targets, running work, and the queue with why each run waits.

    Shows a paused scheduler and broadcasts first, then the targets with their health, the
    running jobs, and each queued run's position, owner, priority, why it waits and its
    estimated start (users see others' runs as a count)."""
    from deploybench.cli.render_farm import render_queue

    with _reported():
        view = _client(server, token).queue()
    if as_json:
        _print_json(view)
        return
    render_queue(view, out())


@farm_app.command()
def usage(
    days: Annotated[int, typer.Option("--days", min=1, max=366, help="Look back this far.")] = 7,
    as_json: JsonOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Target time per user per day and per target, and the fair-share state.

    Users see their own usage; operators and admins everyone's."""
    from deploybench.cli.render_farm import render_usage

    with _reported():
        report = _client(server, token).usage(days)
    if as_json:
        _print_json(report)
        return
    render_usage(report, out())


# -- job controls ---------------------------------------------------------------------------


def _affected(count: int, done: str, ident: str) -> None:
    if count:
        err.print(f"{count} job(s) {done}: {escape(ident)}")
    else:
        err.print(f"no job of {escape(ident)} could be {done} (finished, or not in that state)")


@farm_app.command()
def start(ident: IdentArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Operators: run a job or campaign next, ahead of every other queued run.

    Held jobs are resumed; they start on the next free compatible target."""
    with _reported():
        _affected(_client(server, token).start_now(ident), "moved ahead of the queue", ident)


@farm_app.command()
def priority(
    ident: IdentArg,
    value: Annotated[
        int, typer.Argument(help="Higher starts first; 0 is the default (negative: after --).")
    ],
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Operators: set the priority of a queued or held job or campaign."""
    with _reported():
        count = _client(server, token).set_priority(ident, value)
        _affected(count, f"set to priority {value}", ident)


@farm_app.command()
def stop(ident: IdentArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Suspend a job or campaign: hold it until `deploybench resume`.

    A running measurement is aborted and re-queued as held (never paused half-way, which
    would corrupt its timing); queued ones are held."""
    with _reported():
        _affected(_client(server, token).suspend(ident), "stopped (held)", ident)


@farm_app.command()
def resume(ident: IdentArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Put held jobs of a job or campaign back in the queue."""
    with _reported():
        _affected(_client(server, token).resume(ident), "resumed", ident)


@farm_app.command()
def abort(ident: IdentArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Abort a job or campaign (running ones through their agent: SIGTERM, then SIGKILL)."""
    with _reported():
        _affected(_client(server, token).abort(ident), "aborted", ident)


# -- broadcasts and the scheduler -------------------------------------------------------------


@farm_app.command()
def broadcast(
    message: Annotated[str, typer.Argument(help="What every user should know.")],
    hours: Annotated[
        float, typer.Option("--hours", min=0, help="Shown this long; 0: until further notice.")
    ] = 24.0,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Operators: show a message to every user (`queue`, `status`; mailed when set up)."""
    with _reported():
        if not message.strip():
            raise UserError("the message is empty")
        sent = _client(server, token).broadcast(message, hours or None)
    until = f" until {sent['expires_at']}" if sent.get("expires_at") else ""
    err.print(f"broadcast {sent.get('id')} sent{escape(until)}")


@scheduler_app.command("pause")
def scheduler_pause(
    message: Annotated[str, typer.Option("--message", "-m", help="Why (shown to everyone).")] = "",
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Operators: nothing new starts until `resume`; running work finishes."""
    with _reported():
        _client(server, token).scheduler_pause(message)
    err.print("scheduler paused: nothing new starts until `deploybench scheduler resume`")


@scheduler_app.command("resume")
def scheduler_resume(server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Operators: start dispatching queued work again."""
    with _reported():
        _client(server, token).scheduler_resume()
    err.print("scheduler resumed")


@scheduler_app.command("status")
def scheduler_status(
    as_json: JsonOpt = False, server: ServerOpt = None, token: TokenOpt = None
) -> None:
    """Whether the scheduler is paused, and its policy and limits."""
    from deploybench.cli.render_farm import paused_banner

    with _reported():
        state = _client(server, token).scheduler()
    if as_json:
        _print_json(state)
        return
    console = out()
    banner = paused_banner(state.get("paused"))
    console.print(banner if banner is not None else "scheduler running")
    for key, value in sorted((state.get("settings") or {}).items()):
        console.print(f"  {key}: {escape(json.dumps(value))}", highlight=False)


# -- reservations ---------------------------------------------------------------------------


@reservations_app.command("list")
def reservations_list(
    include_all: Annotated[
        bool, typer.Option("--all", help="Past and canceled reservations too.")
    ] = False,
    as_json: JsonOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """The reservation calendar (everyone's), soonest first."""
    from deploybench.cli.render_farm import reservations_table

    with _reported():
        rows = _client(server, token).reservations(all=include_all)
    if as_json:
        _print_json(rows)
        return
    out().print(reservations_table(rows))


@reservations_app.command("add")
def reservations_add(
    target: Annotated[str | None, typer.Option("--target", help="One target by name.")] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Every target with these tags (repeat the option)."),
    ] = None,
    start_at: Annotated[
        str, typer.Option("--start", help="ISO 8601 time (no zone: local time), or now.")
    ] = "now",
    hours: Annotated[float | None, typer.Option("--hours", help="Length in hours.")] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="ISO 8601 end, instead of --hours.")
    ] = None,
    lend_idle: Annotated[
        bool | None,
        typer.Option(
            "--lend-idle/--no-lend-idle",
            help="Others may use the target while you have nothing waiting (default: the "
            "lab's setting).",
        ),
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Shown in the calendar.")] = "",
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Reserve a target, or each target with the tags, for a time window.

    The window runs from --start for --hours, or to --end. All or nothing; prints the new
    reservation ids."""
    with _reported():
        if (hours is None) == (end is None):
            raise UserError("give the length with --hours H, or the end with --end TIME")
        if target is None and not tag:
            raise UserError("say what to reserve: --target NAME, or --tag T (repeatable)")
        begins = None if start_at.strip().lower() == "now" else _time(start_at, "--start")
        ends = None if end is None else _time(end, "--end")
        if hours is not None and begins is not None:
            ends, hours = begins + timedelta(hours=_hours(hours)), None
        made = _client(server, token).reserve(
            begins,
            ends,
            hours=None if hours is None else _hours(hours),
            target=target,
            tags=tag or None,
            lend_idle=lend_idle,
            note=note,
        )
    from deploybench.cli.render_farm import clock

    for r in made:
        err.print(
            f"reservation {r['id']}: {escape(str(r['target']))} from {clock(r['starts_at'])} "
            f"to {clock(r['ends_at'])}"
        )
        sys.stdout.write(f"{r['id']}\n")


@reservations_app.command("cancel")
def reservations_cancel(
    reservation_id: Annotated[int, typer.Argument(help="Reservation id.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Cancel a reservation (yours, or anyone's for operators)."""
    with _reported():
        canceled = _client(server, token).cancel_reservation(reservation_id)
    err.print(f"reservation {reservation_id} on {escape(str(canceled.get('target')))} canceled")


# -- targets --------------------------------------------------------------------------------


def _show_target(view: dict[str, Any]) -> None:
    """``target NAME: enabled, health unknown (maintenance ended)``."""
    from deploybench.cli.render_farm import health_text

    enabled = "enabled" if view.get("enabled") else "disabled"
    health = health_text(view.get("health"), view.get("health_reason"))
    out().print(f"target {escape(str(view.get('name')))}: {enabled}, health ", health, sep="")
    if view.get("health") == "unknown" and view.get("enabled"):
        err.print("a health check runs before it takes work again")


@targets_app.command("list")
def targets_list(
    as_json: JsonOpt = False, server: ServerOpt = None, token: TokenOpt = None
) -> None:
    """Every target with its agent, health, and whether it is enabled."""
    from deploybench.cli.render_farm import targets_table

    with _reported():
        rows = _client(server, token).targets()
    if as_json:
        _print_json(rows)
        return
    out().print(targets_table(rows))


@targets_app.command("enable")
def targets_enable(target: TargetArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Operators: bring a target back into service.

    Also ends its maintenance or retirement; after those a health check must pass before
    it takes work."""
    with _reported():
        view = _client(server, token).update_target(
            target, enabled=True, maintenance=False, retired=False
        )
    _show_target(view)


@targets_app.command("disable")
def targets_disable(target: TargetArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Operators: nothing new starts on the target; a running job finishes."""
    with _reported():
        view = _client(server, token).update_target(target, enabled=False)
    _show_target(view)


@targets_app.command("retire")
def targets_retire(
    target: TargetArg,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Why.")] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Operators: take a target out of service for good (until `unretire`)."""
    with _reported():
        view = _client(server, token).update_target(target, retired=True, message=message)
    _show_target(view)


@targets_app.command("unretire")
def targets_unretire(target: TargetArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Operators: bring a retired target back; a health check must pass first."""
    with _reported():
        view = _client(server, token).update_target(target, retired=False)
    _show_target(view)


@targets_app.command("check")
def targets_check(target: TargetArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Operators: run a health check on the target before it serves again."""
    with _reported():
        view = _client(server, token).check_target(target)
    _show_target(view)


@targets_app.command("maintenance")
def targets_maintenance(
    target: TargetArg,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO 8601 end (no zone: local time).")
    ] = None,
    hours: Annotated[float | None, typer.Option("--hours", help="Ends in this many hours.")] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Why.")] = None,
    end_it: Annotated[
        bool, typer.Option("--end", help="End the maintenance now (a health check follows).")
    ] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Operators: put a target in maintenance, or end it with --end.

    Nothing new starts on it meanwhile; running work finishes. With --until or --hours it
    ends by itself, and a health check runs before it serves again."""
    with _reported():
        if end_it and (until or hours is not None or message):
            raise UserError("--end takes no --until, --hours or --message")
        if until is not None and hours is not None:
            raise UserError("give --until or --hours, not both")
        client = _client(server, token)
        if end_it:
            view = client.update_target(target, maintenance=False)
        else:
            ends = _time(until, "--until") if until is not None else None
            if hours is not None:
                ends = datetime.now(UTC) + timedelta(hours=_hours(hours))
            view = client.update_target(target, maintenance=True, until=ends, message=message)
    _show_target(view)


@targets_app.command("tag")
def targets_tag(
    target: TargetArg,
    tags: Annotated[
        list[str] | None, typer.Argument(help="The new tags (replace the old; none: clear).")
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Operators: set a target's tags (reservations and placements select by them)."""
    with _reported():
        view = _client(server, token).update_target(target, tags=list(tags or []))
    out().print(
        f"target {escape(str(view.get('name')))} tags: {escape(', '.join(view.get('tags', [])))}"
        if view.get("tags")
        else f"target {escape(str(view.get('name')))} has no tags"
    )
