"""Tables of the farm for the terminal: queue, usage, targets, reservations (presentation only).

The renderers take the server's JSON as it comes and tolerate missing keys, so an older or
newer server still prints what it sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

_HEALTH_STYLE = {
    "good": "green",
    "unknown": "yellow",
    "bad": "bold red",
    "maintenance": "magenta",
    "retired": "dim",
    "offline": "red",
}


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def clock(value: Any) -> str:
    """An ISO time from the server as local ``YYYY-MM-DD HH:MM`` ("-" when absent)."""
    when = _parse(value)
    if when is None:
        return "-" if value in (None, "") else str(value)
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def duration(seconds: Any) -> str:
    """Seconds as ``42 s``, ``12.5 min`` or ``3.25 h``."""
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _relative(value: Any, now: Any) -> str:
    """``YYYY-MM-DD HH:MM (in 12.0 min)`` against the server's ``now``."""
    when, base = _parse(value), _parse(now)
    if when is None:
        return "unknown" if value is None else str(value)
    text = clock(value)
    if base is not None:
        ahead = (when - base).total_seconds()
        text += " (now)" if ahead < 1 else f" (in {duration(ahead)})"
    return text


def _cell(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def placement_text(placement: Any) -> str:
    """A placement as ``plugin local, target a/local, tags gpu``."""
    if not isinstance(placement, Mapping):
        return _cell(placement)
    parts = []
    plugin, target = placement.get("plugin"), placement.get("target")
    if plugin and "/" in str(plugin) and not target:  # a farm-wide name given as target.name
        plugin, target = None, plugin
    for key, value in (("plugin", plugin), ("target", target)):
        if value:
            parts.append(f"{key} {value}")
    if placement.get("tags"):
        parts.append("tags " + ", ".join(str(t) for t in placement["tags"]))
    for path, value in (placement.get("attributes") or {}).items():
        parts.append(f"{path}={value}")
    if placement.get("health_check"):
        parts.append("health check")
    return "; ".join(parts) or "-"


def health_text(health: Any, reason: Any = None) -> Text:
    """The health word in its colour, with its reason."""
    word = str(health or "?")
    text = Text(word, style=_HEALTH_STYLE.get(word, ""))
    if reason:
        text.append(f" ({reason})", style="dim")
    return text


def paused_banner(paused: Any) -> Text | None:
    """The line that says the scheduler is paused, or None."""
    if not isinstance(paused, Mapping):
        return None
    message = paused.get("message") or ""
    line = f"scheduler PAUSED by {paused.get('by', '?')} since {clock(paused.get('at'))}"
    return Text(line + (f": {message}" if message else "") + " — nothing new starts", "bold red")


def print_broadcasts(broadcasts: Iterable[Mapping[str, Any]], console: Console) -> None:
    """Operators' messages, one line each."""
    for item in broadcasts:
        author = item.get("author", "?")
        console.print(
            Text.assemble(
                ("broadcast ", "bold yellow"),
                (f"[{author}, {clock(item.get('created_at'))}] ", "dim"),
                str(item.get("message", "")),
            )
        )


def targets_table(targets: Iterable[Mapping[str, Any]], title: str = "targets") -> Table:
    """Targets with health (and why), agent, state, tags, maintenance and reservation."""
    rows = list(targets)
    table = Table(title=f"{title} ({len(rows)})")
    for column in ("target", "plugin", "health", "enabled", "agent", "running", "tags", "notes"):
        table.add_column(column)
    for t in rows:
        notes = []
        if t.get("maintenance_until"):
            notes.append(f"maintenance until {clock(t['maintenance_until'])}")
        reserved = t.get("reserved_by")
        if isinstance(reserved, Mapping):
            notes.append(f"reserved by {reserved.get('user')} until {clock(reserved.get('until'))}")
        elif reserved:
            notes.append(f"reserved by {reserved}")
        agent = t.get("agent")
        state = t.get("agent_state")
        agent_text = " ".join(str(p) for p in (agent, f"({state})" if state else None) if p)
        table.add_row(
            escape(_cell(t.get("name"))),
            escape(_cell(t.get("plugin"))),
            health_text(t.get("health"), t.get("health_reason")),
            _cell(t.get("enabled")),
            escape(agent_text or "-"),
            escape(_cell(t.get("running"))),
            escape(_cell(t.get("tags"))),
            escape("; ".join(notes) or "-"),
        )
    return table


def render_queue(view: Mapping[str, Any], console: Console) -> None:
    """``deploybench queue``: pause banner, broadcasts, targets, running work, the queue."""
    now = view.get("now")
    banner = paused_banner(view.get("paused"))
    if banner is not None:
        console.print(banner)
    print_broadcasts(view.get("broadcasts") or [], console)
    console.print(targets_table(view.get("targets") or []))

    running = list(view.get("running") or [])
    table = Table(title=f"running ({len(running)})")
    for column in ("job", "experiment", "owner", "target", "phase", "started", "expected end"):
        table.add_column(column)
    for job in running:
        table.add_row(
            *(escape(_cell(job.get(k))) for k in ("id", "name", "owner", "target", "phase")),
            clock(job.get("started_at")),
            escape(_relative(job.get("expected_end"), now)),
        )
    console.print(table)

    queued = list(view.get("queued") or [])
    table = Table(title=f"queued ({len(queued)})")
    for column in (
        "#",
        "job",
        "experiment",
        "owner",
        "priority",
        "placement",
        "why it waits",
        "estimated start",
        "duration",
    ):
        table.add_column(column)
    for job in queued:
        table.add_row(
            _cell(job.get("position")),
            *(escape(_cell(job.get(k))) for k in ("id", "name", "owner", "priority")),
            escape(placement_text(job.get("placement"))),
            escape(_cell(job.get("reason"))),
            escape(_relative(job.get("estimated_start"), now)),
            duration(job.get("estimated_duration_s")),
        )
    console.print(table)
    others = view.get("others_queued")
    if isinstance(others, int) and others:
        console.print(f"and {others} queued run(s) of other users")
    if any(job.get("provenance") == "estimated" for job in [*queued, *running]):
        console.print(
            Text("start and end times are estimates from past runs or max_runtime_s", "dim")
        )


def _seconds_table(title: str, rows: list[Mapping[str, Any]], key: str) -> Table:
    table = Table(title=title)
    for column in ("user", key, "time"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(_cell(row.get("user"))),
            escape(_cell(row.get(key))),
            duration(row.get("seconds")),
        )
    return table


def render_usage(report: Mapping[str, Any], console: Console) -> None:
    """``deploybench usage``: per user per day, per target, and the fair-share state."""
    since, until = clock(report.get("since")), clock(report.get("until"))
    console.print(f"target time from {since} to {until}")
    console.print(_seconds_table("per user per day", list(report.get("per_day") or []), "day"))
    console.print(
        _seconds_table("per user per target", list(report.get("per_target") or []), "target")
    )
    shares = list(report.get("fair_share") or [])
    table = Table(title="fair share (sliding window)")
    for column in ("user", "share", "used", "used / share", "state"):
        table.add_column(column)
    for s in shares:
        state = str(s.get("state", "-"))
        style = "green" if state == "under share" else "yellow" if state == "over share" else "red"
        table.add_row(
            escape(_cell(s.get("user"))),
            _cell(s.get("share")),
            duration(s.get("used_s")),
            duration(s.get("normalized")),
            Text(state, style=style),
        )
    console.print(table)


def reservations_table(rows: Iterable[Mapping[str, Any]]) -> Table:
    """The reservation calendar."""
    found = list(rows)
    table = Table(title=f"reservations ({len(found)})")
    for column in ("id", "user", "target", "from", "to", "lend idle", "note", "state"):
        table.add_column(column)
    for r in found:
        table.add_row(
            _cell(r.get("id")),
            escape(_cell(r.get("user"))),
            escape(_cell(r.get("target"))),
            clock(r.get("starts_at")),
            clock(r.get("ends_at")),
            _cell(r.get("lend_idle")),
            escape(_cell(r.get("note"))),
            _reservation_state(r),
        )
    return table


def _reservation_state(row: Mapping[str, Any]) -> str:
    if row.get("canceled"):
        return "canceled"
    starts, ends = _parse(row.get("starts_at")), _parse(row.get("ends_at"))
    now = datetime.now(UTC)
    if ends is not None and ends.tzinfo is not None and ends <= now:
        return "ended"
    if starts is not None and starts.tzinfo is not None and starts > now:
        return "upcoming"
    return "active"
