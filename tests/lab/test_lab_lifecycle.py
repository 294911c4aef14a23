"""The job lifecycle through the services and the HTTP API, on SQLite and PostgreSQL: FIFO
leases, one active job per target (enforced by the database), epoch fencing, lease expiry
with bounded retries, abort / suspend / resume, and storing finished runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from deploybench.services.lab import utc
from deploybench.store.lab_models import JobRow
from deploybench.testing.records import make_record

if TYPE_CHECKING:
    from conftest import Agent, Lab

API = "/api/v1"
# Short leases; the sweeper is kept out of the way so the test decides when leases expire.
SHORT_LEASES = pytest.mark.lab_settings(lease_ttl=0.3, sweep_interval=3600)


def _row(lab: Lab, job_id: str) -> JobRow:
    with sessionmaker(lab.services.store.engine, expire_on_commit=False)() as session:
        row = session.get(JobRow, job_id)
        assert row is not None
        return row


def _leased(lab: Lab, agent: Agent, free: list[str] | None = None) -> dict[str, Any]:
    assignment = lab.lease(agent, free)
    assert assignment is not None
    return assignment


def _event_kinds(lab: Lab, job_id: str) -> list[str]:
    logs = lab.client.get(f"{API}/jobs/{job_id}/logs", headers=lab.admin.headers)
    return [e["kind"] for e in logs.json()]


def test_leases_are_fifo_per_target(lab: Lab) -> None:
    user = lab.add_user("user")
    agent = lab.add_agent(("local", "gpu"))
    local, gpu = f"{agent.name}/local", f"{agent.name}/gpu"
    _, (a, b, c) = lab.submit(
        user,
        lab.definition("a"),
        lab.definition("b", target="gpu"),
        lab.definition("c", target=local),  # the exact farm-wide name works too
    )
    _, (d,) = lab.submit(user, lab.definition("d"))
    _, more = lab.submit(user, *(lab.definition(f"e{i}") for i in range(5)))

    assert _leased(lab, agent, [gpu])["job_id"] == b
    order = []
    for _ in range(3 + len(more)):
        assignment = _leased(lab, agent, [local])
        assert assignment["target"] == local
        order.append(assignment["job_id"])
        done = lab.finish(agent, assignment["job_id"], assignment["epoch"], failure_kind="crash")
        assert done.json()["state"] == "failed"  # a crash is not retried
    assert order == [a, c, d, *more]
    assert lab.lease(agent, [local]) is None


def test_one_active_job_per_target(lab: Lab) -> None:
    agent = lab.add_agent()
    _, (first, second, third) = lab.submit(
        lab.admin, lab.definition("a"), lab.definition("b"), lab.definition("c")
    )
    assignment = _leased(lab, agent)
    assert assignment["job_id"] == first
    assert assignment["attempt"] == 1 and assignment["epoch"] >= 1
    assert assignment["lease_ttl"] == lab.settings.lease_ttl
    assert set(assignment["inputs"]) == {"model", "dataset"}
    assert assignment["definition"]["name"] == "a"

    assert lab.lease(agent) is None  # HTTP: 204
    service = lab.services.lab
    assert service.lease(lab.principal(agent.account), agent.name, agent.targets) is None
    assert lab.job(second)["state"] == "queued"
    assert lab.job(first)["target"] == agent.targets[0]

    # Not only the scheduler: the database refuses a second active job on the target.
    target_id = _row(lab, first).target_id
    assert target_id is not None
    engine = lab.services.store.engine
    grab = text("UPDATE jobs SET state = :state, target_id = :target WHERE id = :id")
    for state in ("assigned", "running"):
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(grab, {"state": state, "target": target_id, "id": second})
    assert _row(lab, second).state == "queued"

    lab.finish(agent, first, assignment["epoch"], failure_kind="crash")
    assert _leased(lab, agent)["job_id"] == second
    # The index is partial: an ended job may point at a target that has an active one.
    with engine.begin() as connection:
        connection.execute(grab, {"state": "succeeded", "target": target_id, "id": third})
    assert _row(lab, third).state == "succeeded"


def test_calls_with_a_stale_epoch_are_fenced(lab: Lab) -> None:
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(lab.admin, lab.definition())
    epoch = _leased(lab, agent)["epoch"]
    for stale in (epoch - 1, epoch + 1):
        assert lab.heartbeat(agent, job_id, stale).status_code == 409
        log = lab.client.post(
            f"{API}/jobs/{job_id}/log", json={"epoch": stale, "lines": ["x"]}, headers=agent.headers
        )
        assert log.status_code == 409
        assert lab.finish(agent, job_id, stale, failure_kind="crash").status_code == 409
    assert lab.job(job_id)["state"] == "assigned"
    current = lab.heartbeat(agent, job_id, epoch, phase="measure")
    assert current.status_code == 200 and current.json() == {"cancel": None}
    job = lab.job(job_id)
    assert (job["state"], job["phase"]) == ("running", "measure")
    log = lab.client.post(
        f"{API}/jobs/{job_id}/log", json={"epoch": epoch, "lines": ["hello"]}, headers=agent.headers
    )
    assert log.status_code == 204
    logs = lab.client.get(f"{API}/jobs/{job_id}/logs", headers=lab.admin.headers).json()
    assert [e["message"] for e in logs if e["kind"] == "log"] == ["hello"]
    assert lab.heartbeat(agent, "job-unknown", epoch).status_code == 409


@SHORT_LEASES
def test_heartbeats_keep_a_lease_alive(lab: Lab) -> None:
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(lab.admin, lab.definition())
    epoch = _leased(lab, agent)["epoch"]
    for _ in range(4):
        time.sleep(0.15)
        assert lab.heartbeat(agent, job_id, epoch).status_code == 200
    assert lab.services.lab.expire_leases() == []  # 0.6 s after the lease: twice the TTL
    assert lab.job(job_id)["state"] == "assigned"


@pytest.mark.lab_settings(lease_ttl=0.3, sweep_interval=3600, retry_backoff=0.6)
def test_an_expired_lease_is_retried_after_a_back_off(lab: Lab, tmp_path: Path) -> None:
    owner = lab.add_user("user")
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(owner, lab.definition())
    first = _leased(lab, agent)
    record = lab.record(tmp_path)  # the lost attempt's result, uploaded too late
    time.sleep(0.35)  # no heartbeat

    expired_at = datetime.now(UTC)
    assert lab.services.lab.expire_leases() == [job_id]
    assert lab.lease(agent) is None  # queued again, but backing off
    job = lab.job(job_id)
    assert (job["state"], job["attempt"], job["target"]) == ("queued", 2, None)
    not_before = utc(_row(lab, job_id).not_before)
    assert not_before is not None
    assert not_before.timestamp() >= expired_at.timestamp() + 0.5  # back-off: retry_backoff
    assert "retry" in _event_kinds(lab, job_id)

    # The lost agent is fenced off; its late result is refused and not stored.
    assert lab.heartbeat(agent, job_id, first["epoch"]).status_code == 409
    late = lab.finish(agent, job_id, first["epoch"], record)
    assert late.status_code == 409
    assert lab.client.get(f"{API}/runs/{record.id}", headers=owner.headers).status_code == 404
    assert lab.services.store.list_runs() == []

    time.sleep(max(0.0, not_before.timestamp() - time.time()) + 0.05)
    lab.heal(agent, tmp_path)  # a lost lease makes the target suspect: checked first
    second = _leased(lab, agent)
    assert second["job_id"] == job_id
    assert second["attempt"] == 2
    assert second["epoch"] > first["epoch"]
    assert lab.heartbeat(agent, job_id, second["epoch"]).status_code == 200


@pytest.mark.lab_settings(lease_ttl=0.2, sweep_interval=3600, retry_backoff=0, max_attempts=2)
def test_a_job_lost_max_attempts_times_fails(lab: Lab, tmp_path: Path) -> None:
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(lab.admin, lab.definition())
    for attempt in (1, 2):
        if attempt > 1:
            lab.heal(agent, tmp_path)
        assignment = _leased(lab, agent)
        assert assignment["attempt"] == attempt
        time.sleep(0.25)
        assert lab.services.lab.expire_leases() == [job_id]
    job = lab.job(job_id)
    assert job["state"] == "failed"
    assert job["failure_kind"] == "lost"
    assert "no heartbeat" in job["error"]
    assert job["ended_at"] is not None
    assert lab.lease(agent) is None
    assert lab.services.lab.expire_leases() == []


@pytest.mark.lab_settings(lease_ttl=0.2, sweep_interval=0.05, retry_backoff=0)
def test_the_sweeper_expires_leases_by_itself(lab: Lab) -> None:
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(lab.admin, lab.definition())
    _leased(lab, agent)
    deadline = time.monotonic() + 10
    while lab.job(job_id)["state"] != "queued":
        assert time.monotonic() < deadline, "the lease sweeper never re-queued the job"
        time.sleep(0.05)
    assert lab.job(job_id)["attempt"] == 2


@pytest.mark.lab_settings(retry_backoff=3.0)  # longer than a health check takes, even loaded
def test_infrastructure_failures_are_retried_model_failures_are_not(
    lab: Lab, tmp_path: Path
) -> None:
    agent = lab.add_agent()
    lab.services.lab.farm.check_definition("local")  # built before the timing-sensitive part
    _, (retried, final, recorded) = lab.submit(
        lab.admin, lab.definition("a"), lab.definition("b"), lab.definition("c")
    )
    first = _leased(lab, agent)
    answer = lab.finish(agent, retried, first["epoch"], failure_kind="infrastructure", message="x")
    assert answer.status_code == 200
    assert (answer.json()["state"], answer.json()["attempt"]) == ("queued", 2)
    # The target is suspect after an infrastructure failure: a health check runs first
    # (the sweeper may already have queued it, so no lease is attempted here).
    health = {t["name"]: t["health"] for t in lab.services.lab.list_targets()}
    assert health[agent.targets[0]] == "unknown"
    lab.heal(agent, tmp_path)
    second = _leased(lab, agent)
    assert second["job_id"] == final  # the retry waits out its back-off meanwhile
    crashed = lab.finish(agent, final, second["epoch"], failure_kind="crash", message="segv")
    assert crashed.json()["state"] == "failed"
    assert (crashed.json()["failure_kind"], crashed.json()["error"]) == ("crash", "segv")
    time.sleep(lab.settings.retry_backoff + 0.05)
    third = _leased(lab, agent)
    assert (third["job_id"], third["attempt"]) == (retried, 2)
    lab.finish(agent, retried, third["epoch"], failure_kind="infrastructure")  # retried again
    assert lab.job(retried)["attempt"] == 3
    lab.heal(agent, tmp_path)

    fourth = _leased(lab, agent)  # a run record of a failed run ends the job failed
    assert fourth["job_id"] == recorded
    record = lab.record(tmp_path, status="failed")
    job = lab.finish(agent, recorded, fourth["epoch"], record).json()
    assert (job["state"], job["failure_kind"], job["error"]) == ("failed", "crash", "boom")
    assert job["run_id"] == record.id

    time.sleep(lab.settings.retry_backoff * 2 + 0.05)  # the back-off doubles
    last = _leased(lab, agent)
    assert (last["job_id"], last["attempt"]) == (retried, 3)
    gave_up = lab.finish(agent, retried, last["epoch"], failure_kind="infrastructure")
    assert (gave_up.json()["state"], gave_up.json()["failure_kind"]) == ("failed", "infrastructure")
    with sessionmaker(lab.services.store.engine)() as session:
        runs = select(JobRow.state).where(JobRow.purpose == "run")
        assert session.scalars(runs).all() == ["failed"] * 3


def test_abort_queued_at_once_running_through_the_agent(lab: Lab) -> None:
    user = lab.add_user("user")
    agent = lab.add_agent()
    _, (running, queued, waiting) = lab.submit(
        user, lab.definition("a"), lab.definition("b"), lab.definition("c")
    )
    epoch = _leased(lab, agent)["epoch"]
    assert lab.heartbeat(agent, running, epoch, phase="measure").json() == {"cancel": None}

    answer = lab.client.post(f"{API}/jobs/{queued}/abort", headers=user.headers)
    assert answer.json() == {"affected": 1}
    job = lab.job(queued, user)
    assert (job["state"], job["failure_kind"]) == ("aborted", "canceled")
    assert job["ended_at"] is not None
    again = lab.client.post(f"{API}/jobs/{queued}/abort", headers=user.headers)
    assert again.json() == {"affected": 0}

    answer = lab.client.post(f"{API}/jobs/{running}/abort", headers=user.headers)
    assert answer.json() == {"affected": 1}
    assert lab.job(running)["state"] == "running"  # until the agent has stopped it
    assert lab.heartbeat(agent, running, epoch).json() == {"cancel": "abort"}
    done = lab.finish(agent, running, epoch)
    assert done.status_code == 200
    assert (done.json()["state"], done.json()["failure_kind"]) == ("aborted", "canceled")
    assert _leased(lab, agent)["job_id"] == waiting  # the target is free; b is never run


def test_suspending_a_running_job_holds_it_until_resumed(lab: Lab) -> None:
    user = lab.add_user("user")
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(user, lab.definition())
    first = _leased(lab, agent)
    lab.heartbeat(agent, job_id, first["epoch"], phase="measure")
    assert lab.client.post(f"{API}/jobs/{job_id}/suspend", headers=user.headers).json() == {
        "affected": 1
    }
    assert lab.heartbeat(agent, job_id, first["epoch"]).json() == {"cancel": "suspend"}
    held = lab.finish(agent, job_id, first["epoch"])
    assert held.status_code == 200 and held.json()["state"] == "held"
    repeat = lab.finish(agent, job_id, first["epoch"])  # a retried finish: same answer
    assert repeat.status_code == 200 and repeat.json() == held.json()
    assert lab.lease(agent) is None  # held jobs are not dispatched

    assert lab.client.post(f"{API}/jobs/{job_id}/resume", headers=user.headers).json() == {
        "affected": 1
    }
    assert lab.job(job_id)["state"] == "queued"
    second = _leased(lab, agent)
    assert second["job_id"] == job_id and second["epoch"] > first["epoch"]


@SHORT_LEASES
def test_a_suspended_job_whose_agent_is_lost_stays_held(lab: Lab) -> None:
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(lab.admin, lab.definition())
    _leased(lab, agent)
    lab.client.post(f"{API}/jobs/{job_id}/suspend", headers=lab.admin.headers)
    time.sleep(0.35)
    assert lab.services.lab.expire_leases() == [job_id]
    assert lab.job(job_id)["state"] == "held"
    lab.client.post(f"{API}/jobs/{job_id}/resume", headers=lab.admin.headers)
    assert _leased(lab, agent)["job_id"] == job_id


def test_suspend_and_resume_a_campaign_keeps_submission_order(lab: Lab) -> None:
    user = lab.add_user("user")
    agent = lab.add_agent()
    campaign, ids = lab.submit(user, *(lab.definition(f"j{i}") for i in range(4)))
    suspended = lab.client.post(f"{API}/jobs/{campaign}/suspend", headers=user.headers)
    assert suspended.json() == {"affected": 4}
    assert {lab.job(i)["state"] for i in ids} == {"held"}
    assert lab.lease(agent) is None
    resumed = lab.client.post(f"{API}/jobs/{campaign}/resume", headers=user.headers)
    assert resumed.json() == {"affected": 4}
    order = []
    for _ in ids:
        assignment = _leased(lab, agent)
        order.append(assignment["job_id"])
        lab.finish(agent, assignment["job_id"], assignment["epoch"], failure_kind="crash")
    assert order == ids


def test_a_finish_that_fails_after_storing_the_run_stores_nothing(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run and the job's closure commit together: a crash between them (here an error
    raised while closing the job) leaves no orphaned run, and the retried finish stores it."""
    owner, agent = lab.add_user("user"), lab.add_agent()
    _, (job_id,) = lab.submit(owner, lab.definition())
    epoch = _leased(lab, agent)["epoch"]
    record = lab.record(tmp_path)
    before = lab.job(job_id)["state"]
    service = lab.services.lab
    real_close = type(service)._close

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("server killed while closing the job")

    monkeypatch.setattr(type(service), "_close", crash)
    with pytest.raises(RuntimeError, match="server killed"):
        service.finish(job_id, epoch, record)
    assert lab.services.store.list_runs() == []
    assert lab.job(job_id)["state"] == before

    monkeypatch.setattr(type(service), "_close", real_close)
    done = lab.finish(agent, job_id, epoch, record)
    assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
    assert [s.record.id for s in lab.services.store.list_runs()] == [record.id]


def test_a_finished_run_is_stored_once_and_visible_to_its_owner(lab: Lab, tmp_path: Path) -> None:
    owner, other, operator = lab.add_user("user"), lab.add_user("user"), lab.add_user("operator")
    agent = lab.add_agent()
    _, (job_id,) = lab.submit(owner, lab.definition())
    epoch = _leased(lab, agent)["epoch"]
    lab.heartbeat(agent, job_id, epoch, phase="measure")

    record, files = make_record(tmp_path)
    missing = lab.finish(agent, job_id, epoch, record)
    assert missing.status_code == 400  # its artifacts were not uploaded yet
    assert "was not uploaded" in " ".join(missing.json()["detail"])
    assert lab.job(job_id)["state"] == "running"
    for path in files.values():
        lab.upload(path.read_bytes(), agent.account)

    done = lab.finish(agent, job_id, epoch, record)
    assert done.status_code == 200, done.text
    job = done.json()
    assert (job["state"], job["run_id"], job["ended_at"] is not None) == (
        "succeeded",
        record.id,
        True,
    )
    repeat = lab.finish(agent, job_id, epoch, record)
    assert repeat.status_code == 200 and repeat.json() == job
    stored = lab.services.store.list_runs()
    assert [s.record.id for s in stored] == [record.id]
    assert stored[0].owner == owner.name

    mine = lab.client.get(f"{API}/runs/{record.id}", headers=owner.headers)
    assert mine.status_code == 200 and mine.json() == record.model_dump(mode="json")
    assert lab.client.get(f"{API}/runs/{record.id}", headers=operator.headers).status_code == 200
    assert lab.client.get(f"{API}/runs/{record.id}", headers=other.headers).status_code == 404
    assert lab.client.get(f"{API}/runs", headers=other.headers).json() == []
    listed = lab.client.get(f"{API}/runs", headers=owner.headers).json()
    assert [r["id"] for r in listed] == [record.id]
    assert lab.heartbeat(agent, job_id, epoch).status_code == 409  # the attempt is over
    assert lab.lease(agent) is None
