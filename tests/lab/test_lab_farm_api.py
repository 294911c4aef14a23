"""Operating the farm through the REST API: operator-only endpoints, pausing the scheduler,
taking targets out of dispatch and back through a health check, reservations, priorities,
usage reports and broadcasts (on SQLite and PostgreSQL, ``backend``)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Account, Agent, Lab

API = "/api/v1"


def _call(
    lab: Lab, method: str, path: str, account: Account, body: Any = None, status: int = 200
) -> Any:
    answer: httpx.Response = lab.client.request(
        method, f"{API}{path}", json=body, headers=account.headers
    )
    assert answer.status_code == status, (method, path, answer.status_code, answer.text)
    return answer.json() if answer.content else None


def _detail(answer: httpx.Response) -> str:
    detail = answer.json()["detail"]
    return " ".join(str(d) for d in detail) if isinstance(detail, list) else str(detail)


def _target(lab: Lab, name: str) -> dict[str, Any]:
    return next(t for t in lab.services.lab.list_targets() if t["name"] == name)


def _finish_next(lab: Lab, agent: Agent, folder: Path) -> str:
    """Lease the agent's next job and finish it with a succeeded record; its id."""
    assignment = lab.lease(agent)
    assert assignment is not None
    where = folder / uuid.uuid4().hex[:8]
    where.mkdir(parents=True)
    record = lab.record(where, name=assignment["definition"]["name"])
    answer = lab.finish(agent, assignment["job_id"], assignment["epoch"], record)
    assert answer.status_code == 200 and answer.json()["state"] == "succeeded", answer.text
    job_id: str = assignment["job_id"]
    return job_id


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def test_operator_endpoints_refuse_users_with_the_services_message(lab: Lab) -> None:
    agent = lab.add_agent()
    user = lab.add_user("user")
    _, [job] = lab.submit(user)
    target = agent.targets[0]
    operator_only = [
        ("POST", "/scheduler/pause", {"message": "x"}),
        ("POST", "/scheduler/resume", None),
        ("POST", "/broadcasts", {"message": "hello"}),
        ("PATCH", f"/targets/{target}", {"enabled": False}),
        ("POST", f"/targets/{target}/check", None),
        ("POST", f"/jobs/{job}/priority", {"priority": 3}),
        ("POST", f"/jobs/{job}/start", None),
    ]
    for method, path, body in operator_only:
        answer = lab.client.request(method, f"{API}{path}", json=body, headers=user.headers)
        assert answer.status_code == 403, (path, answer.text)
        assert "operator" in _detail(answer), (path, _detail(answer))
    assert _call(lab, "GET", "/scheduler", user)["paused"] is None
    assert _target(lab, target)["enabled"] and _target(lab, target)["health"] == "good"
    assert lab.job(job)["priority"] == 0
    assert _call(lab, "GET", "/broadcasts", user) == []
    # the same calls by an operator go through
    operator = lab.add_user("operator")
    for method, path, body in operator_only:
        expected = 201 if path == "/broadcasts" else 200
        _call(lab, method, path, operator, body, status=expected)


def test_pause_stops_leases_and_resume_restarts_them(lab: Lab) -> None:
    agent = lab.add_agent()
    operator = lab.add_user("operator")
    _, [job] = lab.submit(lab.add_user("user"))
    paused = _call(lab, "POST", "/scheduler/pause", operator, {"message": "rack move"})
    assert paused["paused"] is True and paused["by"] == operator.name
    state = _call(lab, "GET", "/scheduler", operator)
    assert state["paused"]["message"] == "rack move" and state["paused"]["by"] == operator.name
    assert state["settings"]["policy"] == "fairshare"
    assert lab.lease(agent) is None  # nothing new starts while paused
    assert lab.job(job)["state"] == "queued"
    queue = _call(lab, "GET", "/queue", operator)
    assert queue["paused"]["by"] == operator.name
    assert "paused" in queue["queued"][0]["reason"]

    _call(lab, "POST", "/scheduler/resume", operator)
    assert _call(lab, "GET", "/scheduler", operator)["paused"] is None
    assignment = lab.lease(agent)
    assert assignment is not None and assignment["job_id"] == job
    empty = lab.client.post(f"{API}/scheduler/pause", headers=operator.headers)  # no body
    assert empty.status_code == 200 and empty.json()["message"] == ""


def test_disabled_maintained_or_retired_targets_get_no_work_until_enabled_and_checked(
    lab: Lab, tmp_path: Path
) -> None:
    agent = lab.add_agent()
    [target] = agent.targets
    operator = lab.add_user("operator")
    _, [job] = lab.submit(lab.add_user("user"))
    back = {"enabled": True, "maintenance": False, "retired": False}  # `targets enable`

    view = _call(lab, "PATCH", f"/targets/{target}", operator, {"enabled": False})
    assert view["enabled"] is False and view["health"] == "good"
    assert lab.lease(agent) is None
    view = _call(lab, "PATCH", f"/targets/{target}", operator, back)
    assert view["enabled"] is True and view["health"] == "good"  # only disabled: no check

    view = _call(lab, "PATCH", f"/targets/{target}", operator, {"retired": True, "message": "old"})
    assert view["health"] == "retired" and view["health_reason"] == "old"
    assert lab.lease(agent) is None
    assert _call(lab, "PATCH", f"/targets/{target}", operator, back)["health"] == "unknown"
    lab.heal(agent, tmp_path)  # a health check comes first, then the target is good again

    until = _iso(timedelta(hours=2))
    view = _call(
        lab,
        "PATCH",
        f"/targets/{target}",
        operator,
        {"maintenance": True, "until": until, "message": "new fan"},
    )
    assert view["health"] == "maintenance" and "new fan" in view["health_reason"]
    assert view["maintenance_until"] is not None
    assert lab.lease(agent) is None
    refused = lab.client.post(f"{API}/targets/{target}/check", headers=operator.headers)
    assert refused.status_code == 400 and "maintenance" in _detail(refused)
    assert _call(lab, "PATCH", f"/targets/{target}", operator, back)["health"] == "unknown"
    lab.heal(agent, tmp_path)
    assignment = lab.lease(agent)
    assert assignment is not None and assignment["job_id"] == job

    view = _call(lab, "POST", f"/targets/{target}/check", operator)
    assert view["health"] == "unknown" and operator.name in view["health_reason"]


def test_target_changes_are_validated(lab: Lab) -> None:
    agent = lab.add_agent()
    [target] = agent.targets
    operator = lab.add_user("operator")
    headers = operator.headers
    past = lab.client.patch(
        f"{API}/targets/{target}",
        json={"maintenance": True, "until": _iso(-timedelta(hours=1))},
        headers=headers,
    )
    assert past.status_code == 400 and "in the past" in _detail(past)
    alone = lab.client.patch(
        f"{API}/targets/{target}", json={"until": _iso(timedelta(hours=1))}, headers=headers
    )
    assert alone.status_code == 422 and "maintenance" in _detail(alone)
    extra = lab.client.patch(f"{API}/targets/{target}", json={"enabld": False}, headers=headers)
    assert extra.status_code == 422
    unknown = lab.client.patch(f"{API}/targets/nobody/local", json={}, headers=headers)
    assert unknown.status_code == 404 and target in _detail(unknown)  # names the real ones
    tagged = _call(lab, "PATCH", f"/targets/{target}", operator, {"tags": ["gpu", "big", "gpu"]})
    assert tagged["tags"] == ["big", "gpu"]
    assert _call(lab, "GET", "/targets", operator)[0]["enabled"] is True


def test_reservations_are_created_listed_and_canceled(lab: Lab) -> None:
    agent = lab.add_agent(("local", "gpu"))
    local, gpu = agent.targets
    operator = lab.add_user("operator")
    ann, bob = lab.add_user("user", lab.unique("ann")), lab.add_user("user", lab.unique("bob"))
    _call(lab, "PATCH", f"/targets/{gpu}", operator, {"tags": ["cuda"]})

    [mine] = _call(
        lab,
        "POST",
        "/reservations",
        ann,
        {"target": local, "starts_at": _iso(timedelta(hours=1)), "hours": 2, "note": "demo"},
        status=201,
    )
    assert (mine["user"], mine["target"], mine["note"]) == (ann.name, local, "demo")
    starts = datetime.fromisoformat(mine["starts_at"])
    assert datetime.fromisoformat(mine["ends_at"]) - starts == timedelta(hours=2)
    [by_tag] = _call(
        lab,
        "POST",
        "/reservations",
        bob,
        {"tags": ["cuda"], "ends_at": _iso(timedelta(hours=1)), "lend_idle": False},
        status=201,
    )
    assert by_tag["target"] == gpu and by_tag["lend_idle"] is False  # starts now by default
    listed = _call(lab, "GET", "/reservations", bob)  # everyone sees the calendar
    assert [r["id"] for r in listed] == [by_tag["id"], mine["id"]]  # soonest first

    clash = lab.client.post(
        f"{API}/reservations",
        json={"target": local, "starts_at": _iso(timedelta(hours=2)), "hours": 1},
        headers=bob.headers,
    )
    assert clash.status_code == 400
    assert ann.name in _detail(clash) and f"reservation {mine['id']}" in _detail(clash)

    not_yours = lab.client.delete(f"{API}/reservations/{mine['id']}", headers=bob.headers)
    assert not_yours.status_code == 403
    canceled = _call(lab, "DELETE", f"/reservations/{mine['id']}", ann)
    assert canceled["canceled"] is True
    assert [r["id"] for r in _call(lab, "GET", "/reservations", ann)] == [by_tag["id"]]
    every = _call(lab, "GET", "/reservations?all=true", ann)
    assert {r["id"]: r["canceled"] for r in every} == {mine["id"]: True, by_tag["id"]: False}
    again = lab.client.delete(f"{API}/reservations/{mine['id']}", headers=ann.headers)
    assert again.status_code == 404
    _call(lab, "DELETE", f"/reservations/{by_tag['id']}", operator)  # operators cancel any
    # the window is free again now that ann's was canceled
    _call(lab, "POST", "/reservations", bob, {"target": local, "hours": 1}, status=201)


def test_reservations_that_cannot_be_made_are_refused_with_the_reason(lab: Lab) -> None:
    agent = lab.add_agent()
    [target] = agent.targets
    user = lab.add_user("user")
    limit = lab.settings.scheduling.reservation_max_hours

    def refused(body: dict[str, Any], status: int = 400) -> str:
        answer = lab.client.post(f"{API}/reservations", json=body, headers=user.headers)
        assert answer.status_code == status, (body, answer.text)
        return _detail(answer)

    past = refused({"target": target, "starts_at": _iso(-timedelta(hours=3)), "hours": 1})
    assert "in the past" in past
    assert "at most" in refused({"target": target, "hours": limit + 1})
    no_match = refused({"tags": ["no-such-tag"], "hours": 1})
    assert "no-such-tag" in no_match and target in no_match  # lists what exists
    assert "no target 'nowhere/local'" in refused({"target": "nowhere/local", "hours": 1}, 404)
    assert "say what to reserve" in refused({"hours": 1})
    assert "ends_at or hours" in refused({"target": target}, status=422)
    both = {"target": target, "hours": 1, "ends_at": _iso(timedelta(hours=1))}
    assert "ends_at or hours" in refused(both, status=422)
    assert _call(lab, "GET", "/reservations?all=true", user) == []


def test_priority_and_start_now_reorder_the_queue(lab: Lab, tmp_path: Path) -> None:
    agent = lab.add_agent()
    operator = lab.add_user("operator")
    user = lab.add_user("user")
    _, ids = lab.submit(user, *(lab.definition(name) for name in ("a", "b", "c")))
    a, b, c = ids
    assert _call(lab, "POST", f"/jobs/{c}/priority", operator, {"priority": 5}) == {"affected": 1}
    assert _call(lab, "POST", f"/jobs/{b}/start", operator) == {"affected": 1}
    assert lab.job(b)["priority"] > lab.job(c)["priority"] == 5
    queue = _call(lab, "GET", "/queue", operator)
    assert [(q["id"], q["position"]) for q in queue["queued"]] == [(b, 1), (c, 2), (a, 3)]
    assert all(q["reason"] for q in queue["queued"])
    bad = lab.client.post(
        f"{API}/jobs/{a}/priority", json={"priority": "high"}, headers=operator.headers
    )
    assert bad.status_code == 422

    assert _finish_next(lab, agent, tmp_path) == b
    # a finished job's priority does not change; held ones are started (resumed) too
    assert _call(lab, "POST", f"/jobs/{b}/priority", operator, {"priority": 9}) == {"affected": 0}
    _call(lab, "POST", f"/jobs/{a}/suspend", user)
    assert lab.job(a)["state"] == "held"
    assert _call(lab, "POST", f"/jobs/{a}/start", operator) == {"affected": 1}
    assert lab.job(a)["state"] == "queued"
    assert [_finish_next(lab, agent, tmp_path) for _ in range(2)] == [a, c]
    missing = lab.client.post(f"{API}/jobs/nope/start", headers=operator.headers)
    assert missing.status_code == 404


def test_the_queue_shows_users_their_own_runs_and_counts_the_others(lab: Lab) -> None:
    lab.add_agent()
    ann, bob = lab.add_user("user"), lab.add_user("user")
    _, [first] = lab.submit(ann)
    _, [second] = lab.submit(bob)
    seen = _call(lab, "GET", "/queue", bob)
    assert [q["id"] for q in seen["queued"]] == [second]
    assert seen["others_queued"] == 1
    assert seen["queued"][0]["owner"] == bob.name and seen["queued"][0]["position"] == 2
    assert [t["health"] for t in seen["targets"]] == ["good"]
    everyone = _call(lab, "GET", "/queue", lab.admin)
    assert [q["id"] for q in everyone["queued"]] == [first, second]
    assert everyone["others_queued"] == 0


def test_usage_has_rows_after_a_finished_job(lab: Lab, tmp_path: Path) -> None:
    agent = lab.add_agent()
    user, other = lab.add_user("user"), lab.add_user("user")
    lab.submit(user)
    _finish_next(lab, agent, tmp_path)
    report = _call(lab, "GET", "/usage?days=1", user)
    today = datetime.now(UTC).date().isoformat()
    assert [(r["user"], r["day"]) for r in report["per_day"]] == [(user.name, today)]
    assert [(r["user"], r["target"]) for r in report["per_target"]] == [
        (user.name, agent.targets[0])
    ]
    assert all(r["seconds"] >= 0 for r in report["per_day"])
    assert [s["user"] for s in report["fair_share"]] == [user.name]
    assert _call(lab, "GET", "/usage", other)["per_day"] == []  # users see only their own
    assert [r["user"] for r in _call(lab, "GET", "/usage", lab.admin)["per_day"]] == [user.name]
    assert lab.client.get(f"{API}/usage?days=0", headers=user.headers).status_code == 422


def test_broadcasts_are_shown_until_they_expire(lab: Lab) -> None:
    operator, user = lab.add_user("operator"), lab.add_user("user")
    sent = _call(
        lab, "POST", "/broadcasts", operator, {"message": "  farm down at 6  "}, status=201
    )
    assert sent["message"] == "farm down at 6" and sent["author"] == operator.name
    assert sent["expires_at"] is not None  # 24 h by default
    short = _call(
        lab, "POST", "/broadcasts", operator, {"message": "soon gone", "hours": 0.0003}, 201
    )
    forever = _call(lab, "POST", "/broadcasts", operator, {"message": "always", "hours": None}, 201)
    assert forever["expires_at"] is None
    shown = [b["id"] for b in _call(lab, "GET", "/broadcasts", user)]
    assert shown == [forever["id"], short["id"], sent["id"]]  # newest first
    time.sleep(1.2)
    assert [b["id"] for b in _call(lab, "GET", "/broadcasts", user)] == [forever["id"], sent["id"]]
    assert [b["message"] for b in _call(lab, "GET", "/queue", user)["broadcasts"]] == [
        "always",
        "farm down at 6",
    ]
    for body in ({"message": ""}, {"message": "x", "hours": 0}, {"message": "x", "extra": 1}):
        answer = lab.client.post(f"{API}/broadcasts", json=body, headers=operator.headers)
        assert answer.status_code == 422, body


@pytest.mark.lab_settings(sweep_interval=0.1)
def test_maintenance_with_an_end_ends_by_itself(lab: Lab) -> None:
    agent = lab.add_agent()
    [target] = agent.targets
    operator = lab.add_user("operator")
    until = _iso(timedelta(seconds=0.5))
    body = {"maintenance": True, "until": until}
    assert _call(lab, "PATCH", f"/targets/{target}", operator, body)["health"] == "maintenance"
    deadline = time.monotonic() + 10
    while _target(lab, target)["health"] == "maintenance" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _target(lab, target)["health"] == "unknown"  # checked before it serves again
