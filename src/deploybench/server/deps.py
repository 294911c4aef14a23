"""Request dependencies: the services held by the app, and the authenticated principal."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from deploybench.server.settings import ServerSettings
from deploybench.server.wakeup import Wakeup
from deploybench.services.auth import AuthError, AuthService, ForbiddenError, Principal, Role
from deploybench.services.lab import LabService
from deploybench.store.sql import SqlResultStore

_bearer = HTTPBearer(auto_error=False)


@dataclass
class Services:
    """Everything an endpoint may use, created once per app."""

    settings: ServerSettings
    store: SqlResultStore
    lab: LabService
    auth: AuthService
    wakeup: Wakeup


def services(request: Request) -> Services:
    """The app's services."""
    held: Services = request.app.state.services
    return held


def principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthError("missing API token: send 'Authorization: Bearer <token>'")
    return services(request).auth.authenticate(credentials.credentials)


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """Dependency factory: the caller must have one of ``roles``."""

    def check(caller: Principal = Depends(principal)) -> Principal:
        if caller.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise ForbiddenError(f"this needs the role {allowed}; you are {caller.role.value}")
        return caller

    return check
