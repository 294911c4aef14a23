"""Parse a ``text/event-stream`` (server-sent events) into the lab's event dicts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Yield one dict per event of an SSE stream given line by line.

    Follows the SSE rules the server relies on: ``data:`` lines accumulate (joined by newlines)
    until a blank line dispatches the event, ``id:`` names it, lines starting with ``:`` are
    keep-alive comments. The data is the event as JSON; the ``id:`` fills its ``id`` when the
    JSON lacks one. A final event without its blank line is still delivered, because a server
    that closes the stream has finished writing it.
    """
    data: list[str] = []
    event_id: str | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield _event(data, event_id)
            data, event_id = [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
        # "event:" and "retry:" carry nothing the lab's events need.
    if data:
        yield _event(data, event_id)


def _event(data: list[str], event_id: str | None) -> dict[str, Any]:
    text = "\n".join(data)
    try:
        value = json.loads(text)
    except ValueError:
        value = {"message": text}
    event: dict[str, Any] = value if isinstance(value, dict) else {"data": value}
    if event_id is not None and "id" not in event:
        event["id"] = int(event_id) if event_id.isdigit() else event_id
    return event
