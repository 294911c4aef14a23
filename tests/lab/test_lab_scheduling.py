"""Scheduling in the lab service: placement selectors (any/each, tags, attributes), declared
runtimes and their limits, the timeout of a run past its max_runtime_s, target health
(offline agents, health checks, bad targets and operator notices), queue reasons and the
usage ledger. Fake agents over the API; real agents are in test_lab_fairshare_e2e.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import API, Agent, Lab
from deploybench.services.notices import Notice, NoticeSettings, Notifier


def _register(lab: Lab, targets: list[dict[str, Any]]) -> Agent:
    account = lab.add_user("agent")
    name = lab.unique("host")
    answer = lab.client.post(
        f"{API}/agents/register",
        json={"name": name, "version": "test", "targets": targets},
        headers=account.headers,
    )
    assert answer.status_code == 200, answer.text
    return Agent(account, name, answer.json()["targets"])


def _placed(lab: Lab, placement: dict[str, Any], **target: Any) -> dict[str, Any]:
    return lab.definition(target="local") | {
        "target": {"name": "local", "placement": placement, **target}
    }


def _targets(lab: Lab) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in lab.services.lab.list_targets()}


def test_each_fans_out_one_pinned_job_per_matching_target(lab: Lab) -> None:
    first, second = lab.add_agent(), lab.add_agent()
    _, jobs = lab.submit(lab.admin, _placed(lab, {"mode": "each"}))
    assert len(jobs) >= 2  # other tests' targets may share a PostgreSQL template: never fewer
    mine = {first.targets[0], second.targets[0]}
    leased = {a["target"] for a in (lab.lease(first), lab.lease(second)) if a is not None}
    assert leased == mine


def test_a_selector_that_matches_no_target_is_refused_and_nothing_is_queued(lab: Lab) -> None:
    agent = lab.add_agent()
    answer = lab.client.post(
        f"{API}/experiments",
        json={"experiments": [lab.definition("ok"), _placed(lab, {"tags": ["gpu-h200"]})]},
        headers=lab.admin.headers,
    )
    assert answer.status_code == 400, answer.text
    detail = " ".join(answer.json()["detail"])
    assert "matches no target" in detail and agent.targets[0] in detail
    assert lab.client.get(f"{API}/jobs", headers=lab.admin.headers).json() == []


def test_attributes_and_tags_pick_the_targets_that_match(lab: Lab) -> None:
    big = _register(lab, [{"name": "local", "kind": "host", "cores": 8, "isa_features": ["avx2"]}])
    small = _register(lab, [{"name": "local", "kind": "host", "cores": 2}])
    _, (job,) = lab.submit(
        lab.admin, _placed(lab, {"attributes": {"cores": 8}, "tags": ["kind:host"]})
    )
    assert lab.lease(small) is None
    assignment = lab.lease(big)
    assert assignment is not None and assignment["job_id"] == job
    lab.finish(big, job, assignment["epoch"], failure_kind="crash", message="x")
    _, (listed,) = lab.submit(lab.admin, _placed(lab, {"attributes": {"isa_features": "avx2"}}))
    assert lab.lease(small) is None  # a list field matches when it contains the value
    again = lab.lease(big)
    assert again is not None and again["job_id"] == listed


def test_max_runtime_must_be_realistic_and_is_required_under_reservations(lab: Lab) -> None:
    agent = lab.add_agent()
    answer = lab.client.post(
        f"{API}/experiments",
        json={"experiments": [_placed(lab, {}, max_runtime_s=10 * 86400)]},
        headers=lab.admin.headers,
    )
    assert answer.status_code == 400 and "over the lab's limit" in answer.text
    now = datetime.now(UTC)
    lab.services.lab.reservations.create(
        lab.principal(lab.admin),
        now + timedelta(hours=1),
        now + timedelta(hours=2),
        target=agent.targets[0],
    )
    answer = lab.client.post(
        f"{API}/experiments", json={"experiments": [lab.definition()]}, headers=lab.admin.headers
    )
    assert answer.status_code == 400 and "max_runtime_s is required" in answer.text
    lab.submit(lab.admin, _placed(lab, {}, max_runtime_s=600))


def test_a_run_past_its_max_runtime_is_stopped_and_fails_as_timeout(lab: Lab) -> None:
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(lab.admin, _placed(lab, {}, max_runtime_s=0.3))
    assignment = lab.lease(agent)
    assert assignment is not None
    assert lab.heartbeat(agent, job_id, assignment["epoch"], "measure").json()["cancel"] is None
    time.sleep(0.4)
    assert lab.heartbeat(agent, job_id, assignment["epoch"]).json()["cancel"] == "abort"
    job = lab.finish(agent, job_id, assignment["epoch"]).json()
    assert (job["state"], job["failure_kind"], job["attempt"]) == ("failed", "timeout", 1)
    assert "max_runtime_s of 0.3 s" in job["error"]


class _Inbox(Notifier):
    def __init__(self) -> None:
        super().__init__(NoticeSettings())
        self.notices: list[Notice] = []

    def announce(self, notice: Notice) -> list[str]:
        self.notices.append(notice)
        return []


@pytest.mark.lab_settings(sweep_interval=3600, scheduling={"offline_after_s": 0.3})
def test_an_offline_agent_is_reported_and_its_target_checked_before_serving(
    lab: Lab, tmp_path: Path
) -> None:
    inbox = _Inbox()
    lab.services.lab.farm._notifier = inbox  # operators' notices land here
    agent = lab.add_agent()
    target = agent.targets[0]
    time.sleep(0.4)
    lab.services.lab.sweep()
    state = _targets(lab)[target]
    assert (state["agent_state"], state["health"]) == ("offline", "unknown")
    deadline = time.monotonic() + 5
    while not inbox.notices and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inbox.notices and "offline" in inbox.notices[0].subject
    _, (job_id,) = lab.submit(lab.admin, lab.definition())
    queue = lab.services.lab.queue_view(lab.principal(lab.admin))
    reason = next(q["reason"] for q in queue["queued"] if q["id"] == job_id)
    assert "no healthy enabled compatible target" in reason and target in reason
    lab.heal(agent, tmp_path)  # polling again brings it online; the check passes first
    assignment = lab.lease(agent)
    assert assignment is not None and assignment["job_id"] == job_id


@pytest.mark.lab_settings(sweep_interval=3600)
def test_a_failed_health_check_makes_the_target_bad_and_tells_the_operators(
    lab: Lab, tmp_path: Path
) -> None:
    inbox = _Inbox()
    lab.services.lab.farm._notifier = inbox
    agent = lab.add_agent()
    lab.services.lab.farm.request_check(lab.principal(lab.admin), agent.targets[0])
    lab.services.lab.sweep()
    check = lab.lease(agent)
    assert check is not None and check["definition"]["name"] == "health-check"
    lab.finish(agent, check["job_id"], check["epoch"], failure_kind="crash", message="segv")
    state = _targets(lab)[agent.targets[0]]
    assert state["health"] == "bad" and "segv" in state["health_reason"]
    deadline = time.monotonic() + 5
    while not inbox.notices and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inbox.notices and "is bad" in inbox.notices[0].subject
    lab.submit(lab.admin, lab.definition())
    lab.services.lab.sweep()  # a bad target gets no automatic check and no work
    assert lab.lease(agent) is None


def test_the_queue_says_why_a_run_waits(lab: Lab) -> None:
    agent = lab.add_agent()
    user = lab.add_user()
    admin = lab.principal(lab.admin)
    now = datetime.now(UTC)
    lab.services.lab.reservations.create(
        admin, now, now + timedelta(hours=1), target=agent.targets[0], lend_idle=False
    )
    _, (job_id,) = lab.submit(user, _placed(lab, {}, max_runtime_s=60))

    def reason() -> str:
        view = lab.services.lab.queue_view(lab.principal(user))
        return str(next(q["reason"] for q in view["queued"] if q["id"] == job_id))

    assert f"reserved by {lab.admin.name}" in reason()
    assert lab.lease(agent) is None
    lab.services.lab.farm.set_paused(admin, True, "firmware upgrade")
    assert "scheduler paused" in reason() and "firmware upgrade" in reason()
    view = lab.services.lab.queue_view(lab.principal(user))
    assert view["paused"]["message"] == "firmware upgrade"


def test_the_usage_ledger_charges_each_phase_to_the_owner(lab: Lab, tmp_path: Path) -> None:
    agent = lab.add_agent()
    user = lab.add_user()
    _, (job_id,) = lab.submit(user, lab.definition())
    assignment = lab.lease(agent)
    assert assignment is not None
    lab.heartbeat(agent, job_id, assignment["epoch"], "download")
    time.sleep(0.05)
    lab.heartbeat(agent, job_id, assignment["epoch"], "measure")
    time.sleep(0.1)
    lab.finish(agent, job_id, assignment["epoch"], lab.record(tmp_path))
    report = lab.services.lab.accounting.report(lab.principal(user), days=1)
    phases = {r["phase"]: r["seconds"] for r in report["per_phase"]}
    assert set(phases) >= {"assigned", "download", "measure"}
    assert phases["measure"] >= 0.1
    assert {r["target"] for r in report["per_target"]} == {agent.targets[0]}
    (state,) = report["fair_share"]
    assert state["user"] == user.name and state["used_s"] > 0.1
    assert lab.services.lab.accounting.report(lab.principal(lab.add_user()))["per_phase"] == []


@pytest.mark.lab_settings(sweep_interval=3600, scheduling={"health_check_interval_s": 1.5})
def test_idle_good_targets_are_checked_periodically(lab: Lab, tmp_path: Path) -> None:
    agent = lab.add_agent()
    lab.services.lab.sweep()
    assert lab.lease(agent) is None  # registered just now: not due yet
    time.sleep(1.6)
    lab.heal(agent, tmp_path)  # the sweep queues a check, which passes and stamps the time
    checked = _targets(lab)[agent.targets[0]]["health_checked_at"]
    assert checked is not None
    lab.services.lab.sweep()
    assert lab.lease(agent) is None  # just checked: the next one waits for the interval
