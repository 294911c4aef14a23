"""Authentication and authorization of every lab route, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import fastapi.routing
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from deploybench.store.lab_models import TokenRow

if TYPE_CHECKING:
    from conftest import Account, Lab

API = "/api/v1"
SKIPPED = ("/api/v1/health", "/api/v1/openapi.json", "/api/v1/docs", "/docs", "/redoc")
# Every endpoint of docs/lab-api.md but /health (method, path).
DOCUMENTED = {
    ("GET", "/api/v1/me"),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
    ("POST", "/api/v1/experiments"),
    ("GET", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/{job_id}"),
    ("GET", "/api/v1/jobs/{job_id}/logs"),
    ("POST", "/api/v1/jobs/{ident}/abort"),
    ("POST", "/api/v1/jobs/{ident}/suspend"),
    ("POST", "/api/v1/jobs/{ident}/resume"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/runs"),
    ("GET", "/api/v1/runs/{run_id}"),
    ("GET", "/api/v1/targets"),
    ("PUT", "/api/v1/artifacts/{sha256}"),
    ("GET", "/api/v1/artifacts/{sha256}"),
    ("POST", "/api/v1/agents/register"),
    ("POST", "/api/v1/agents/{name}/lease"),
    ("POST", "/api/v1/jobs/{job_id}/heartbeat"),
    ("POST", "/api/v1/jobs/{job_id}/log"),
    ("POST", "/api/v1/jobs/{job_id}/finish"),
}
# Plausible values for path parameters, so only the token can be the reason for a refusal.
PATH_VALUES = {
    "{token_id}": "1",
    "{job_id}": "job-0",
    "{ident}": "job-0",
    "{run_id}": "run-0",
    "{sha256}": hashlib.sha256(b"x").hexdigest(),
    "{name}": "agent",
}


def _routes(app: fastapi.FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, including those of included routers."""
    # Recent FastAPI keeps an included router as one entry of app.routes: expand it.
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(contexts(app.routes)) if contexts else list(app.routes)
    found: set[tuple[str, str]] = set()
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None) or set()
        if path is None or path.startswith(SKIPPED):
            continue
        found.update((method, path) for method in methods if method != "HEAD")
    return sorted(found)


def _call(lab: Lab, method: str, path: str, headers: dict[str, str]) -> int:
    for placeholder, value in PATH_VALUES.items():
        path = path.replace(placeholder, value)
    body: dict[str, Any] = {}
    if method == "PUT":
        body["content"] = b"x"
    elif method == "POST":
        body["json"] = {}
    answer = lab.client.request(method, path, headers=headers, **body)
    if answer.status_code == 401:
        assert answer.headers.get("www-authenticate") == "Bearer"
    status: int = answer.status_code
    return status


def _expired_in_db(lab: Lab, account: Account) -> str:
    """A second token of the account whose expiry is set in the past directly in the DB."""
    token_id, token = lab.services.auth.issue_token(account.id, "soon", timedelta(days=1))
    with sessionmaker(lab.services.store.engine).begin() as session:
        session.execute(
            update(TokenRow)
            .where(TokenRow.id == token_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    return token


def _revoked(lab: Lab, account: Account) -> str:
    made = lab.client.post(f"{API}/tokens", json={"label": "x"}, headers=account.headers)
    assert made.status_code == 201
    token: str = made.json()["token"]
    assert lab.client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}).is_success
    gone = lab.client.delete(f"{API}/tokens/{made.json()['id']}", headers=account.headers)
    assert gone.status_code == 204
    return token


def test_every_route_needs_a_valid_token(lab: Lab) -> None:
    routes = _routes(lab.app)
    assert set(routes) >= DOCUMENTED, sorted(DOCUMENTED - set(routes))
    admin = lab.admin
    bearer = {
        "revoked": _revoked(lab, admin),
        "expired": _expired_in_db(lab, admin),
        "unknown": "dbt_" + "a" * 43,
    }
    credentials: dict[str, dict[str, str]] = {
        "none": {},
        "not bearer": {"Authorization": f"Basic {admin.token}"},
        **{name: {"Authorization": f"Bearer {token}"} for name, token in bearer.items()},
    }
    refused = {
        (method, path, kind): _call(lab, method, path, headers)
        for method, path in routes
        for kind, headers in credentials.items()
    }
    assert {key: code for key, code in refused.items() if code != 401} == {}
    # The admin's own token still works: the refusals were about the tokens.
    assert _call(lab, "GET", "/api/v1/me", admin.headers) == 200


def test_tokens_expire_and_only_their_owner_or_an_admin_revokes_them(lab: Lab) -> None:
    ann, bob = lab.add_user("user"), lab.add_user("operator")
    short = lab.client.post(f"{API}/tokens", json={"ttl_days": 1e-6}, headers=ann.headers)
    assert short.status_code == 201  # valid for 86 ms
    issued = time.monotonic()
    made = lab.client.post(f"{API}/tokens", json={}, headers=ann.headers).json()
    headers = {"Authorization": f"Bearer {made['token']}"}

    refused = lab.client.delete(f"{API}/tokens/{made['id']}", headers=bob.headers)
    assert refused.status_code == 403
    assert lab.client.get(f"{API}/me", headers=headers).status_code == 200
    revoked = lab.client.delete(f"{API}/tokens/{made['id']}", headers=lab.admin.headers)
    assert revoked.status_code == 204
    assert lab.client.get(f"{API}/me", headers=headers).status_code == 401

    time.sleep(max(0.0, issued + 0.15 - time.monotonic()))
    answer = lab.client.get(
        f"{API}/me", headers={"Authorization": f"Bearer {short.json()['token']}"}
    )
    assert answer.status_code == 401
    assert "expired" in " ".join(answer.json()["detail"])
    assert lab.client.get(f"{API}/me", headers=ann.headers).status_code == 200


def test_only_admins_create_users(lab: Lab) -> None:
    for role in ("user", "operator", "agent"):
        caller = lab.add_user(role)
        answer = lab.client.post(
            f"{API}/users", json={"name": f"by-{role}", "role": "admin"}, headers=caller.headers
        )
        assert answer.status_code == 403, role
    names = {"admin"} | {f"by-{r}" for r in ("user", "operator", "agent")}
    made = lab.client.post(
        f"{API}/users", json={"name": "new-op", "role": "operator"}, headers=lab.admin.headers
    )
    assert made.status_code == 201
    assert made.json()["role"] == "operator"
    new_headers = {"Authorization": f"Bearer {made.json()['token']}"}
    assert lab.client.get(f"{API}/me", headers=new_headers).json() == {
        "name": "new-op",
        "role": "operator",
    }
    for name in names - {"admin"}:  # none of the refused creations happened
        assert (
            lab.client.post(
                f"{API}/users", json={"name": name}, headers=lab.admin.headers
            ).status_code
            == 201
        )
    duplicate = lab.client.post(f"{API}/users", json={"name": "new-op"}, headers=lab.admin.headers)
    assert duplicate.status_code == 400


def test_users_see_and_control_only_their_own_jobs(lab: Lab) -> None:
    ann, bob, operator = lab.add_user("user"), lab.add_user("user"), lab.add_user("operator")
    campaign, (job_id,) = lab.submit(ann, lab.definition())

    assert lab.client.get(f"{API}/jobs", headers=bob.headers).json() == []
    listed = lab.client.get(f"{API}/jobs", params={"campaign": campaign}, headers=bob.headers)
    assert listed.json() == []
    assert lab.client.get(f"{API}/jobs/{job_id}", headers=bob.headers).status_code == 404
    assert lab.client.get(f"{API}/jobs/{job_id}/logs", headers=bob.headers).status_code == 404
    for action in ("abort", "suspend", "resume"):
        for ident in (job_id, campaign):
            answer = lab.client.post(f"{API}/jobs/{ident}/{action}", headers=bob.headers)
            assert answer.status_code == 404, (action, ident)
    events = lab.client.get(f"{API}/events", params={"once": True}, headers=bob.headers).json()
    assert events == []
    assert lab.job(job_id, ann)["state"] == "queued"  # bob changed nothing

    assert [j["id"] for j in lab.client.get(f"{API}/jobs", headers=operator.headers).json()] == [
        job_id
    ]
    assert lab.job(job_id, operator)["owner"] == ann.name
    seen = lab.client.get(f"{API}/events", params={"once": True}, headers=operator.headers)
    assert job_id in {e["job"] for e in seen.json()}
    aborted = lab.client.post(f"{API}/jobs/{job_id}/abort", headers=operator.headers)
    assert aborted.json() == {"affected": 1}
    assert lab.job(job_id, ann)["state"] == "aborted"


def test_agent_endpoints_need_the_agents_own_account_or_an_admin(lab: Lab) -> None:
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(lab.admin, lab.definition())
    registration = {"name": "sneaky", "version": "1", "targets": [{"name": "local"}]}
    calls: list[tuple[str, dict[str, Any]]] = [
        (f"{API}/agents/register", registration),
        (f"{API}/agents/{agent.name}/lease", {"free": agent.targets, "wait": 0}),
        (f"{API}/jobs/{job_id}/heartbeat", {"epoch": 1}),
        (f"{API}/jobs/{job_id}/log", {"epoch": 1, "lines": ["x"]}),
        (f"{API}/jobs/{job_id}/finish", {"epoch": 1}),
    ]
    for role in ("user", "operator"):
        caller = lab.add_user(role)
        for path, body in calls:
            assert lab.client.post(path, json=body, headers=caller.headers).status_code == 403
    assert lab.job(job_id)["state"] == "queued"
    assert [t["agent"] for t in lab.client.get(f"{API}/targets", headers=agent.headers).json()] == [
        agent.name
    ]
    # Nor may another agent account use this agent's name.
    theirs = lab.add_agent()
    stolen = lab.client.post(
        f"{API}/agents/{agent.name}/lease",
        json={"free": agent.targets, "wait": 0},
        headers=theirs.headers,
    )
    assert stolen.status_code == 403
    hijack = lab.client.post(
        f"{API}/agents/register",
        json={"name": agent.name, "version": "evil", "targets": [{"name": "x"}]},
        headers=theirs.headers,
    )
    assert hijack.status_code == 403
    unknown = lab.client.post(
        f"{API}/agents/nobody/lease", json={"free": [], "wait": 0}, headers=theirs.headers
    )
    assert unknown.status_code == 403
    assert lab.job(job_id)["state"] == "queued"
    # An admin may act as an agent; the agent itself leases.
    answer = lab.client.post(f"{API}/agents/register", json=registration, headers=lab.admin.headers)
    assert answer.status_code == 200
    assert lab.lease(agent) is not None


def test_a_revoked_agent_token_is_refused(lab: Lab) -> None:
    agent = lab.add_agent()
    made = lab.client.post(f"{API}/tokens", json={"label": "agent"}, headers=agent.headers).json()
    headers = {"Authorization": f"Bearer {made['token']}"}
    _, (job_id,) = lab.submit(lab.admin, lab.definition())
    leased = lab.client.post(
        f"{API}/agents/{agent.name}/lease", json={"free": agent.targets, "wait": 0}, headers=headers
    )
    assert leased.status_code == 200
    epoch = leased.json()["epoch"]
    beat = lab.client.post(f"{API}/jobs/{job_id}/heartbeat", json={"epoch": epoch}, headers=headers)
    assert beat.status_code == 200

    revoked = lab.client.delete(f"{API}/tokens/{made['id']}", headers=lab.admin.headers)
    assert revoked.status_code == 204
    calls: list[tuple[str, dict[str, Any]]] = [
        (f"{API}/agents/{agent.name}/lease", {"free": agent.targets, "wait": 0}),
        (f"{API}/jobs/{job_id}/heartbeat", {"epoch": epoch}),
        (f"{API}/jobs/{job_id}/log", {"epoch": epoch, "lines": ["x"]}),
        (f"{API}/jobs/{job_id}/finish", {"epoch": epoch}),
    ]
    for path, body in calls:
        answer = lab.client.post(path, json=body, headers=headers)
        assert answer.status_code == 401, path
        assert "revoked" in " ".join(answer.json()["detail"])
    job = lab.job(job_id)
    assert job["state"] == "assigned"  # nothing the revoked token sent was applied
    logs = lab.client.get(f"{API}/jobs/{job_id}/logs", headers=lab.admin.headers).json()
    assert "log" not in {e["kind"] for e in logs}
