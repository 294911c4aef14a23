"""``create_app(settings)``: the FastAPI application, with no module-level globals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import sessionmaker

from deploybench import __version__
from deploybench.errors import DeploybenchError, SpecError, UserError
from deploybench.server import routes_admin, routes_agents, routes_farm, routes_jobs
from deploybench.server.deps import Services
from deploybench.server.leader import Leadership
from deploybench.server.settings import ServerSettings
from deploybench.server.wakeup import Wakeup
from deploybench.services.auth import AuthError, AuthService, ForbiddenError, Role
from deploybench.services.lab import FenceError, LabService, NotFoundError
from deploybench.services.notices import Notifier
from deploybench.store.artifacts import (
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    FilesystemArtifactStore,
)
from deploybench.store.sql import RunNotFoundError, SqlResultStore

log = logging.getLogger("deploybench.server")

# Most specific first: the first matching class decides the status.
_STATUS: list[tuple[type[Exception], int]] = [
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (RunNotFoundError, 404),
    (ArtifactNotFoundError, 404),
    (FenceError, 409),
    (SpecError, 422),
    (UserError, 400),
    (ArtifactCorruptedError, 500),
    (DeploybenchError, 500),
]


def _error_response(request: Request, exc: Exception) -> JSONResponse:
    status = next(code for cls, code in _STATUS if isinstance(exc, cls))
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status >= 500:
        log.error("request %s %s failed: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": lines}, status_code=status, headers=headers)


def build_services(settings: ServerSettings, wakeup: Wakeup) -> Services:
    """Open the store (migrating it) and the services over it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlResultStore(
        settings.db_url, FilesystemArtifactStore(settings.data_dir / "artifacts")
    )
    lab = LabService(
        store,
        lease_ttl=settings.lease_ttl,
        max_attempts=settings.max_attempts,
        retry_backoff=settings.retry_backoff,
        notify=wakeup.notify,
        notifier=Notifier(settings.notices),
        scheduling=settings.scheduling,
        check_compatibility=settings.check_compatibility,
    )
    auth = AuthService(sessionmaker(store.engine, expire_on_commit=False))
    return Services(settings, store, lab, auth, wakeup)


def bootstrap_admin(app: FastAPI, name: str = "admin") -> str | None:
    """On first start, create an admin and return its token (None when users exist)."""
    svc: Services = app.state.services
    if svc.auth.has_users():
        return None
    user_id = svc.auth.add_user(name, Role.ADMIN)
    return svc.auth.issue_token(user_id, "bootstrap")[1]


def create_app(settings: ServerSettings) -> FastAPI:
    """The REST API (``/api/v1``) with its lease sweeper running while the app lives."""
    wakeup = Wakeup()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        wakeup.bind(asyncio.get_running_loop())
        svc: Services = app.state.services
        await run_in_threadpool(svc.lab.recover_after_restart)

        leader = Leadership(svc.store.engine)

        async def sweep() -> None:
            while True:
                await asyncio.sleep(settings.sweep_interval)
                try:
                    if await run_in_threadpool(leader.is_leader):
                        await run_in_threadpool(svc.lab.sweep)
                except Exception:  # the sweeper must outlive a failing pass
                    log.exception("sweep failed")

        task = asyncio.create_task(sweep())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            leader.release()
            svc.store.close()

    app = FastAPI(
        title="deploybench lab",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
    )
    app.state.services = build_services(settings, wakeup)
    for cls, _ in _STATUS:
        app.add_exception_handler(cls, _error_response)
    for router in (
        routes_jobs.router,
        routes_admin.router,
        routes_agents.router,
        routes_farm.router,
    ):
        app.include_router(router, prefix="/api/v1")
    return app
