"""The agent: its journal, retries, process control and configuration on their own, then real
jobs against the real app in-process (success, abort, lost lease, restart recovery)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import Lab
from deploybench.agent import (
    Agent,
    Backoff,
    Journal,
    RecoveryAction,
    load_agent_config,
    recovery_action,
    run_agent,
)
from deploybench.agent.heartbeat import Heartbeat
from deploybench.agent.journal import EntryState
from deploybench.agent.process import kill_tree
from deploybench.agent.retry import retrying
from deploybench.client import Client, ServerError, ServerUnreachableError
from deploybench.errors import SpecError, UserError
from deploybench.testing.experiments import FAST_PLAN
from deploybench.testing.lab import wait_for_state
from deploybench.testing.records import make_record

FAST = Backoff(attempts=3, initial=0.01, maximum=0.05)
# Real artifacts (outputs, logs, deployables) are larger than the lab fixture's 64 KiB default.
BIG_UPLOADS = pytest.mark.lab_settings(max_upload_bytes=256 * 1024**2)
# The agent's long-poll sets a per-request timeout, which Starlette's TestClient ignores.
pytestmark = pytest.mark.filterwarnings("ignore:You should not use the 'timeout'")


# -- without a server -------------------------------------------------------------------------


def test_journal_survives_a_restart_and_tracks_what_is_pending(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.begin("job-a", 1, 4, tmp_path / "job-a-1")
    journal.begin("job-b", 2, 7, tmp_path / "job-b-2")
    journal.update("job-a", 1, phase="measure", pid=123, pid_started=1.5)
    journal.update("job-b", 2, state=EntryState.PRODUCED)
    journal.done("job-b", 2)
    [pending] = Journal(tmp_path / "j.sqlite").entries(pending_only=True)
    assert (pending.job_id, pending.attempt, pending.epoch, pending.phase) == (
        "job-a",
        1,
        4,
        "measure",
    )
    assert (pending.state, pending.pid, pending.pid_started) == (EntryState.STARTED, 123, 1.5)
    assert [e.state for e in journal.entries()] == [EntryState.STARTED, EntryState.DONE]


def test_recovery_delivers_only_a_complete_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    entry = journal.begin("job-a", 1, 1, tmp_path / "w")
    assert recovery_action(entry) is RecoveryAction.REPORT_LOST  # no work dir at all
    entry.workdir.mkdir()
    entry.outcome_path.write_text('{"record": {"id": "r"')  # torn: never completed
    assert recovery_action(entry) is RecoveryAction.REPORT_LOST
    entry.outcome_path.write_text(json.dumps({"failure": {"kind": "user", "message": "x"}}))
    assert recovery_action(entry) is RecoveryAction.REPORT_LOST
    entry.outcome_path.write_text(json.dumps({"record": {"id": "r"}, "artifacts": {}}))
    assert recovery_action(entry) is RecoveryAction.DELIVER


def test_retrying_rides_out_transient_errors_only() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ServerUnreachableError("down") if len(calls) == 1 else ServerError("x", 503)
        return "ok"

    assert retrying(flaky, FAST) == "ok" and len(calls) == 3
    with pytest.raises(ServerUnreachableError):
        retrying(lambda: (_ for _ in ()).throw(ServerUnreachableError("down")), FAST)

    def refused() -> None:
        calls.append(1)
        raise UserError("bad")

    calls.clear()
    with pytest.raises(UserError):
        retrying(refused, FAST)
    assert len(calls) == 1
    halted = threading.Event()
    halted.set()
    with pytest.raises(ServerError):
        retrying(lambda: (_ for _ in ()).throw(ServerError("x", 502)), Backoff(None), halted)


def test_kill_tree_reaches_grandchildren_in_other_sessions() -> None:
    # The harness starts workers with start_new_session=True: a process-group kill alone
    # would leave them measuring.
    code = (
        "import subprocess, sys, time;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True);"
        "print(p.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert parent.stdout is not None
    grandchild = psutil.Process(int(parent.stdout.readline()))
    kill_tree(parent.pid, grace=2.0, child=parent)  # type: ignore[arg-type]
    assert parent.returncode is not None
    grandchild.wait(timeout=5)
    assert not grandchild.is_running()


def test_kill_tree_leaves_a_recycled_pid_alone() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        kill_tree(sleeper.pid, grace=0.1, started=psutil.Process(sleeper.pid).create_time() - 60)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_agent_config_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("targets: [local]\nworkdir: work\npoll_wait: 5\n")
    config = load_agent_config(path)
    assert config.targets == ["local"] and config.workdir == tmp_path / "work"
    assert config.poll_wait == 5 and config.journal is None
    path.write_text("targets: [local]\ntarget: [gpu]\n")
    with pytest.raises(SpecError, match="unknown key 'target'"):
        load_agent_config(path)
    path.write_text("- local\n")
    with pytest.raises(SpecError, match="mapping"):
        load_agent_config(path)


def test_a_server_outage_does_not_kill_the_heartbeat() -> None:
    class Down:
        def post_log(self, *args: Any) -> None:
            raise ServerUnreachableError("down")

        def heartbeat(self, *args: Any) -> None:
            raise ServerUnreachableError("down")

    cancels: list[str] = []
    beat = Heartbeat(Down(), "job-a", 1, 0.01, cancels.append)  # type: ignore[arg-type]
    beat.log("kept for later")
    beat.beat()
    assert cancels == [] and len(beat._lines) == 1


# -- against the real server --------------------------------------------------------------------


def _experiment(name: str = "exp", **plan: Any) -> dict[str, Any]:
    return {
        "name": name,
        "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
        "toolchain": {"name": "onnxruntime"},
        "environment": {"threads": 1},
        "measurement": {**FAST_PLAN, "repetitions": 1, **plan},
    }


def _agent(lab: Lab, tmp_path: Path, name: str = "host1", **options: Any) -> Agent:
    account = lab.add_user("agent")
    client = Client(str(lab.client.base_url), account.token, http=lab.client)
    settings: dict[str, Any] = {"poll_wait": 0.5, "heartbeat_interval": 0.2, "kill_grace": 2.0}
    return Agent(
        client,
        name,
        workdir=tmp_path / "work",
        journal=tmp_path / "journal.sqlite",
        backoff=FAST,
        **{**settings, **options},
    )


def _admin(lab: Lab) -> Client:
    return Client(str(lab.client.base_url), lab.admin.token, http=lab.client)


def test_an_idle_poll_registers_and_returns_false(lab: Lab, tmp_path: Path) -> None:
    agent = _agent(lab, tmp_path)
    assert agent.run_once() is False
    assert agent.registered == ["host1/local"]
    [target] = _admin(lab).targets()
    assert target["name"] == "host1/local"


@pytest.mark.slow
@BIG_UPLOADS
def test_a_job_runs_end_to_end_and_leaves_nothing_behind(lab: Lab, tmp_path: Path) -> None:
    admin = _admin(lab)
    agent = _agent(lab, tmp_path)
    submission = admin.submit(_experiment("e2e"))
    assert agent.run_once() is True
    [job] = admin.wait(submission.campaign, progress=False, timeout=5)
    assert job["state"] == "succeeded", admin.logs(job["id"])
    record = admin.run(job["run_id"])
    for name, digest in record["artifacts"].items():
        assert admin.download_artifact(digest, tmp_path / "back" / name).is_file()
    messages = [e["message"] for e in admin.logs(job["id"]) if e["kind"] == "log"]
    assert any("[download]" in m for m in messages)
    assert any("[measure] repetitions 1/1" in m for m in messages)
    assert list((tmp_path / "work").iterdir()) == []  # no user data survives the job
    assert agent.journal.entries(pending_only=True) == []


@pytest.mark.slow
@BIG_UPLOADS
# SQLite only: what this adds to the other agent jobs (which run on both backends) is on the
# agent's side, a cross-compile and QEMU boots, and the job's rows are the same kinds.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_agent_runs_generated_c_on_the_board_a_job_names(lab: Lab, tmp_path: Path) -> None:
    """A farm host with the Cortex-M target: the job's target.config picks the board, the
    agent cross-compiles and boots it in QEMU, and the simulated record comes back."""
    from deploybench.targets.cortex_m import QemuCortexMTarget

    admin = _admin(lab)
    agent = _agent(lab, tmp_path, targets=[QemuCortexMTarget()])
    experiment = {
        **_experiment("board", accuracy_samples=40, repetitions=2),
        "toolchain": {"name": "cgen", "config": {"precision": "int8"}},
        "target": {"name": "qemu-cortex-m", "config": {"board": "lm3s6965evb"}},
    }
    submission = admin.submit(experiment)
    assert agent.run_once() is True
    [job] = admin.wait(submission.campaign, progress=False, timeout=5)
    assert job["state"] == "succeeded", admin.logs(job["id"])
    record = admin.run(job["run_id"])
    assert record["provenance"] == "simulated"
    assert record["target"]["extra"]["board"] == "lm3s6965evb"
    assert record["metrics"]["instructions"]["per_inference"] > 0
    assert record["validity"]["verdict"] == "valid"
    assert agent.registered == ["host1/qemu-cortex-m"]


@pytest.mark.slow
@BIG_UPLOADS
@pytest.mark.parametrize(("action", "final"), [("abort", "aborted"), ("suspend", "held")])
def test_abort_and_suspend_kill_the_running_measurement(
    lab: Lab, tmp_path: Path, action: str, final: str
) -> None:
    admin = _admin(lab)
    agent = _agent(lab, tmp_path)
    submission = admin.submit(_experiment(min_duration=30.0, max_duration=60.0, repetitions=3))
    job_id = submission.jobs[0]
    runner = threading.Thread(target=agent.run_once)
    runner.start()
    wait_for_state(admin, job_id, {"running"})
    time.sleep(1.0)  # let the measurement process start
    pid = agent.journal.entries(pending_only=True)[0].pid
    assert pid is not None and psutil.pid_exists(pid)
    assert getattr(admin, action)(job_id) == 1
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert admin.job(job_id)["state"] == final
    assert not psutil.pid_exists(pid)
    assert any(f"measurement stopped ({action})" in e["message"] for e in admin.logs(job_id))
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.slow
@BIG_UPLOADS
@pytest.mark.lab_settings(lease_ttl=1.0)
def test_a_lost_lease_stops_the_job_without_reporting_it(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Heartbeats that never arrive (a partition): the server re-queues the job and fences the
    # agent off; the agent's next call gets 409, so it kills the run and drops the job.
    monkeypatch.setattr(Heartbeat, "beat", Heartbeat.flush)
    admin = _admin(lab)
    agent = _agent(lab, tmp_path)
    submission = admin.submit(_experiment(min_duration=30.0, max_duration=60.0))
    started = time.monotonic()
    assert agent.run_once() is True
    assert time.monotonic() - started < 30
    job = admin.job(submission.jobs[0])
    assert (job["state"], job["attempt"]) == ("queued", 2)
    assert list((tmp_path / "work").iterdir()) == []


@BIG_UPLOADS
def test_a_restart_reports_an_interrupted_run_and_delivers_a_finished_one(
    lab: Lab, tmp_path: Path
) -> None:
    # Two targets, so both jobs can be active at once: one was interrupted mid-run, the other
    # had produced its record when the agent died.
    agent = lab.add_agent(plugins=("local", "sim"), name="host1")
    _, [lost, produced] = lab.submit(
        lab.admin, lab.definition("lost"), lab.definition("done", target="sim")
    )
    leases = {a["job_id"]: a for a in (lab.lease(agent), lab.lease(agent)) if a is not None}
    assert set(leases) == {lost, produced}
    journal = Journal(tmp_path / "journal.sqlite")
    journal.begin(lost, 1, leases[lost]["epoch"], tmp_path / "work" / f"{lost}-1")
    workdir = tmp_path / "work" / f"{produced}-1"
    journal.begin(produced, 1, leases[produced]["epoch"], workdir)
    record, files = make_record(workdir / "run", name="done")
    outcome = {
        "record": record.model_dump(mode="json"),
        "artifacts": {name: str(path) for name, path in files.items()},
    }
    (workdir / "outcome.json").write_text(json.dumps(outcome))
    (tmp_path / "work" / "stray").mkdir()
    restarted = Agent(
        Client(str(lab.client.base_url), agent.account.token, http=lab.client),
        "host1",
        workdir=tmp_path / "work",
        journal=tmp_path / "journal.sqlite",
        backoff=FAST,
    )
    assert restarted.recover() == 2
    assert (lab.job(lost)["state"], lab.job(lost)["attempt"]) == ("queued", 2)  # retried
    assert lab.job(produced)["state"] == "succeeded"
    assert lab.job(produced)["run_id"] == record.id
    assert restarted.journal.entries(pending_only=True) == []
    assert list((tmp_path / "work").iterdir()) == []


def test_run_agent_stops_when_told(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # run_agent builds its own Client from a URL: point it at the in-process app.
    import deploybench.client as client_module

    token = lab.add_user("agent").token
    monkeypatch.setattr(
        client_module,
        "Client",
        lambda url, tok, timeout=30.0: Client(url, tok, http=lab.client),
    )
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"targets: [local]\nworkdir: {tmp_path / 'w'}\njournal: j.sqlite\npoll_wait: 0.2\n"
    )
    stop = threading.Event()
    thread = threading.Thread(
        target=run_agent, args=(str(lab.client.base_url), token, "named", config, stop)
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not _admin(lab).targets() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [t["name"] for t in _admin(lab).targets()] == ["named/local"]
    assert (tmp_path / "j.sqlite").is_file()
