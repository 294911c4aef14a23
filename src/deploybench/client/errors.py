"""Turn the server's HTTP answers into deploybench's own errors.

Callers (the CLI, notebooks, the agent) then handle one error hierarchy whether a problem was
found locally or by the server, and the server's message reaches the user unchanged.
"""

from __future__ import annotations

from typing import Any

import httpx

from deploybench.errors import DeploybenchError, SpecError, UserError


class ServerUnreachableError(UserError):
    """The server could not be reached or dropped the connection (the agent retries these)."""


class ServerError(DeploybenchError):
    """The server failed (HTTP 5xx); ``status`` tells a passing outage (502-504) apart."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """A proxy or a restarting server: worth retrying."""
        return self.status in (502, 503, 504)


def unreachable(url: str, exc: httpx.TransportError) -> ServerUnreachableError:
    """The error for a transport failure, with the fix for the common case."""
    if isinstance(exc, httpx.ConnectError):
        return ServerUnreachableError(
            f"cannot reach the deploybench server at {url}; is it running? (`deploybench up`)"
        )
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachableError(f"the deploybench server at {url} did not answer in time")
    return ServerUnreachableError(f"lost the connection to the deploybench server at {url}: {exc}")


def _detail_lines(detail: Any) -> list[str]:
    """The server's ``detail`` as lines: a string, a list of strings, or FastAPI's own
    validation items ``{"loc": [...], "msg": ...}``."""
    if detail is None:
        return []
    if isinstance(detail, str):
        return [detail]
    if isinstance(detail, list):
        lines: list[str] = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                lines.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            else:
                lines.append(str(item))
        return lines
    return [str(detail)]


def server_message(response: httpx.Response) -> str:
    """What the server said, as readable text (falls back to the status line)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    lines = _detail_lines(body.get("detail") if isinstance(body, dict) else None)
    if not lines:
        text = response.text.strip()
        lines = [text[:500] or f"HTTP {response.status_code} {response.reason_phrase}"]
    if len(lines) == 1:
        return lines[0]
    return lines[0] + "\n  " + "\n  ".join(lines[1:])


def raise_for_answer(response: httpx.Response) -> None:
    """Raise the deploybench error matching a non-2xx answer; return on success."""
    status = response.status_code
    if status < 400:
        return
    response.read()  # a streamed answer's body is not loaded yet
    message = server_message(response)
    # Imported here: the service modules pull in the runner (seconds of numpy/sklearn
    # imports), which `import deploybench.client` should not pay for.
    from deploybench.services.auth import AuthError, ForbiddenError
    from deploybench.services.lab import FenceError, NotFoundError

    if status == 401:
        raise AuthError(f"{message} (check the API token)")
    if status == 403:
        raise ForbiddenError(message)
    if status == 404:
        raise NotFoundError(message)
    if status == 409:
        raise FenceError(message)
    if status == 422:
        raise SpecError(message)
    if status in (400, 413):
        raise UserError(message)
    if status >= 500:
        raise ServerError(f"the deploybench server failed (HTTP {status}): {message}", status)
    raise UserError(f"the server refused the request (HTTP {status}): {message}")
