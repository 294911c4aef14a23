"""Users, tokens, targets and artifacts."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from deploybench.server.deps import Services, principal, require, services
from deploybench.services.auth import Principal, Role

router = APIRouter()
# A malformed id is a client error (422), never a path into the store (500 before).
_SHA256 = PathParam(pattern=r"^[0-9a-f]{64}$", description="sha256 of the content, lowercase hex.")


class NewUser(BaseModel):
    """A user to create."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Role = Role.USER
    password: str | None = Field(default=None, min_length=8)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    webhook_url: str | None = Field(default=None, pattern=r"^https?://")


class NewToken(BaseModel):
    """A token to issue for the caller."""

    model_config = ConfigDict(extra="forbid")

    label: str = "api"
    ttl_days: float | None = Field(default=None, gt=0)


@router.get("/me")
def me(caller: Principal = Depends(principal)) -> dict[str, str]:
    """Who the token belongs to."""
    return {"name": caller.name, "role": caller.role.value}


@router.post("/users", status_code=201)
def add_user(
    body: NewUser,
    caller: Principal = Depends(require(Role.ADMIN)),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Create a user and a first token (shown once)."""
    user_id = svc.auth.add_user(body.name, body.role, body.password, body.email, body.webhook_url)
    _, token = svc.auth.issue_token(user_id, "initial")
    return {"id": user_id, "name": body.name, "role": body.role.value, "token": token}


@router.post("/tokens", status_code=201)
def new_token(
    body: NewToken, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Another token for the caller (shown once)."""
    from datetime import timedelta

    ttl = timedelta(days=body.ttl_days) if body.ttl_days else None
    token_id, token = svc.auth.issue_token(caller.user_id, body.label, ttl)
    return {"id": token_id, "token": token}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: int, caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> Response:
    """Revoke a token (its owner or an admin)."""
    svc.auth.revoke(token_id, caller)
    return Response(status_code=204)


@router.get("/targets")
def targets(
    caller: Principal = Depends(principal), svc: Services = Depends(services)
) -> list[dict[str, Any]]:
    """Every target of the farm."""
    return svc.lab.list_targets()


@router.put("/artifacts/{sha256}", status_code=201)
async def upload(
    request: Request,
    sha256: str = _SHA256,
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Store an uploaded file whose sha256 must match the URL; size-limited."""
    limit = svc.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:
        raise HTTPException(413, f"upload of {declared} bytes is over the {limit}-byte limit")
    digest = hashlib.sha256()
    size = 0
    handle, name = tempfile.mkstemp(prefix="upload-", dir=svc.settings.data_dir)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"upload is over the {limit}-byte limit")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise HTTPException(
                400, f"checksum mismatch: the body's sha256 is {digest.hexdigest()}, not {sha256}"
            )
        info = await run_in_threadpool(svc.store.artifacts.write_file, path)
    finally:
        path.unlink(missing_ok=True)
    return {"sha256": info.sha256, "size": info.size}


@router.get("/artifacts/{sha256}")
def download(
    sha256: str = _SHA256,
    caller: Principal = Depends(principal),
    svc: Services = Depends(services),
) -> FileResponse:
    """A stored file, verified before it is sent."""
    svc.store.artifacts.verify(sha256)
    return FileResponse(
        svc.store.artifacts.path_of(sha256),  # type: ignore[attr-defined]
        media_type="application/octet-stream",
    )
