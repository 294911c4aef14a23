"""The HTTP layer shared by the user client and the agent: auth, URLs, error mapping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import httpx

from deploybench.client.errors import raise_for_answer, unreachable

API_PREFIX = "/api/v1"


class BaseClient:
    """Authenticated calls to ``URL/api/v1``; every failure becomes a deploybench error.

    ``http`` may be any ``httpx.Client``, e.g. Starlette's ``TestClient`` that runs the server
    in-process (see :meth:`for_app`); ``transport`` plugs a transport into a new one.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._auth = {"Authorization": f"Bearer {token}"}
        self._owns_http = http is None
        self._http = http or httpx.Client(transport=transport, timeout=timeout)
        self._exit = contextlib.ExitStack()

    @classmethod
    def for_app(cls, app: Any, token: str, *, lifespan: bool = True) -> Self:
        """A client that runs an ASGI app in-process (tests, notebooks), no socket needed.

        With ``lifespan`` the app's startup runs now and its shutdown on :meth:`close`. To
        share one running app between several tokens, create a single ``TestClient`` and pass
        it as ``http=`` to each client (it is then not closed by them).
        """
        from starlette.testclient import TestClient

        http = TestClient(app, base_url="http://testserver", raise_server_exceptions=True)
        client = cls("http://testserver", token, http=http)
        if lifespan:
            client._exit.enter_context(http)
        return client

    def close(self) -> None:
        """Release the connection pool (and stop an in-process app started by for_app)."""
        self._exit.close()
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _url(self, path: str) -> str:
        return f"{self.url}{API_PREFIX}{path}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One call; ``timeout`` (seconds) overrides the default, e.g. for long-polls."""
        wanted = {k: v for k, v in (params or {}).items() if v is not None}
        # Only a long-poll overrides the timeout (Starlette's TestClient warns on any).
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(
                method,
                self._url(path),
                json=json,
                params=wanted or None,
                content=content,
                headers={**self._auth, **(headers or {})},
                **extra,
            )
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
        raise_for_answer(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    @contextlib.contextmanager
    def _stream(
        self, path: str, *, params: dict[str, Any] | None = None, read_timeout: float | None
    ) -> Iterator[httpx.Response]:
        """A streamed GET (SSE, artifact downloads); transport errors map like _request's."""
        wanted = {k: v for k, v in (params or {}).items() if v is not None}
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        try:
            with self._http.stream(
                "GET", self._url(path), params=wanted or None, headers=self._auth, timeout=timeout
            ) as response:
                raise_for_answer(response)
                yield response
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
