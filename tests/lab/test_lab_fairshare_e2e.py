"""Fair share, reservations and disabled targets end to end: a real lab server on 127.0.0.1
(uvicorn, in this process) and real `deploybench agent` processes running real, quick ONNX
Runtime measurements.

The server runs in a thread of the test process rather than as `deploybench serve`: the same
``create_app`` and uvicorn behind real sockets, without the seconds a fresh interpreter takes
to start (the scheduling settings are passed as they would be in server.yaml). Everything a
user or an operator does goes through the HTTP API with the Python client; the agents are
child processes in sessions of their own, killed with their process group at teardown.

Start order is read from the server's ``assigned`` events (one per dispatch decision, ids in
commit order) and cross-checked with the jobs' ``started_at``. Timing-sensitive steps happen
while the scheduler is paused, so the order asserted is the policy's, not a race's.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psutil
import pytest
import uvicorn

from conftest import API, Lab
from deploybench.client import Client
from deploybench.scheduler.settings import SchedulingSettings
from deploybench.server.app import bootstrap_admin, create_app
from deploybench.server.embedded import free_port
from deploybench.server.settings import ServerSettings
from deploybench.testing.experiments import FAST_PLAN

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "deploybench.cli.app"]
ACTIVE = {"assigned", "running"}
FINAL = {"succeeded", "failed", "aborted"}
# The fast plan cut to the bone: one repetition, a few inferences, no probes (a run takes
# a few seconds, most of it interpreter start-up in the measurement processes).
PLAN: dict[str, Any] = {
    **FAST_PLAN,
    "repetitions": 1,
    "warmup_runs": 1,
    "min_iterations": 10,
    "min_duration": 0.01,
    "accuracy_samples": 20,
    "probes": [],
}


def _experiment(name: str, max_runtime_s: float = 300.0, **placement: Any) -> dict[str, Any]:
    target: dict[str, Any] = {"name": "local", "max_runtime_s": max_runtime_s}
    if placement:
        target["placement"] = placement
    return {
        "name": name,
        "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
        "toolchain": {"name": "onnxruntime"},
        "environment": {"threads": 1},
        "measurement": PLAN,
        "target": target,
    }


@dataclass
class LiveLab:
    """A lab server on 127.0.0.1 (uvicorn in a thread) and its agent processes."""

    home: Path
    url: str
    admin_token: str
    server: uvicorn.Server
    thread: threading.Thread
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    clients: list[Client] = field(default_factory=list)
    files: list[IO[bytes]] = field(default_factory=list)

    def client(self, token: str | None = None) -> Client:
        """A client with ``token`` (default: the admin's), closed at teardown."""
        made = Client(self.url, token or self.admin_token)
        self.clients.append(made)
        return made

    def add_user(self, name: str, role: str = "user") -> str:
        """Create an account through the API; returns its token."""
        token: str = self.client().add_user(name, role)["token"]
        return token

    def start_agent(self, name: str) -> None:
        """`deploybench agent` with an account of its own, in a data folder of its own."""
        token = self.add_user(f"agent-{name}", "agent")
        env = {**os.environ, "DEPLOYBENCH_HOME": str(self.home / f"agent-{name}")}
        env.pop("DEPLOYBENCH_DB_URL", None)
        (self.home / f"agent-{name}").mkdir()
        log = (self.home / f"agent-{name}.log").open("ab")
        self.files.append(log)
        self.agents[name] = subprocess.Popen(
            [*CLI, "agent", "--server", self.url, "--token", token, "--name", name],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_registered(self, *targets: str) -> None:
        """Until every named target is registered (its agent is then polling for work)."""
        admin = self.client()
        _wait(
            lambda: set(targets) <= {t["name"] for t in admin.targets()},
            60,
            lambda: f"targets {targets} never registered\n{self.logs()}",
        )

    def wait_state(self, job_id: str, states: set[str], timeout: float = 90) -> dict[str, Any]:
        """Poll a job until it is in one of ``states``; fails with the agents' logs."""
        admin = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = admin.job(job_id)
            if job["state"] in states:
                return job
            time.sleep(0.1)
        raise AssertionError(f"{admin.job(job_id)} never reached {states}\n{self.logs()}")

    def wait_assigned(self, count: int, timeout: float = 150) -> list[tuple[str, str]]:
        """Until ``count`` runs have been assigned: the ``assigned`` events (see _assigned)."""
        admin = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _assigned(admin)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"{count} runs never started: {_assigned(admin)}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.home.glob("agent-*.log"))
        )

    def stop(self) -> None:
        for process in self.agents.values():
            if process.poll() is None:
                # Measurement processes run in sessions of their own: kill them too, or a
                # run still going at the end would go on eating CPU during the next test.
                family: list[psutil.Process] = []
                with contextlib.suppress(psutil.Error):
                    family = psutil.Process(process.pid).children(recursive=True)
                os.killpg(process.pid, signal.SIGKILL)
                for child in family:
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                process.wait(30)
        for client in self.clients:
            client.close()
        for log in self.files:
            log.close()
        self.server.should_exit = True
        self.server.force_exit = True  # killed agents' long-polls need no grace
        self.thread.join(30)


LabStarter = Callable[..., LiveLab]


@pytest.fixture
def start_lab(tmp_path: Path, _sqlite_template: Path) -> Iterator[LabStarter]:
    """``start_lab(policy)``: a fresh lab with that scheduling policy, stopped at teardown."""
    labs: list[LiveLab] = []

    def start(policy: str = "fairshare") -> LiveLab:
        home = tmp_path / f"lab-{len(labs)}"
        home.mkdir()
        shutil.copyfile(_sqlite_template, home / "lab.db")
        settings = ServerSettings(
            db_url=f"sqlite:///{home / 'lab.db'}",
            data_dir=home / "data",
            lease_ttl=30.0,
            sweep_interval=0.5,
            scheduling=SchedulingSettings(policy=policy),
        )
        app = create_app(settings)
        token = bootstrap_admin(app)
        assert token is not None
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_config=None,
                lifespan="on",
                timeout_graceful_shutdown=2,
            )
        )
        thread = threading.Thread(target=server.run, name="lab-server", daemon=True)
        thread.start()
        lab = LiveLab(home, f"http://127.0.0.1:{port}", token, server, thread)
        labs.append(lab)
        _wait(lambda: server.started, 30, "the lab server did not start")
        return lab

    try:
        yield start
    finally:
        for lab in labs:
            lab.stop()


def _wait(probe: Callable[[], bool], timeout: float, message: str | Callable[[], str]) -> None:
    """Poll ``probe`` until it is true; AssertionError with ``message``."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(0.1)


def _assigned(admin: Client) -> list[tuple[str, str]]:
    """(job id, message) of every ``assigned`` event so far, in commit order."""
    found: list[tuple[str, str]] = []
    after = 0
    while True:
        batch = admin.events(after, once=True)
        if not batch:
            return found
        found += [(e["job"], e["message"]) for e in batch if e["kind"] == "assigned"]
        after = batch[-1]["id"]


def _started(jobs: list[dict[str, Any]]) -> list[str]:
    """Ids of the jobs that have started, by ``started_at``."""
    begun = [j for j in jobs if j["started_at"] is not None]
    return [j["id"] for j in sorted(begun, key=lambda j: j["started_at"])]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _states(client: Client, ids: list[str]) -> dict[str, str]:
    return {i: client.job(i)["state"] for i in ids}


def _reasons(client: Client) -> dict[str, str]:
    """Why each of the caller's queued runs waits, from the queue view."""
    return {q["id"]: q["reason"] for q in client.queue()["queued"]}


# -- fair share ---------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["fairshare", "fifo"])
def test_user_under_its_share_goes_first_and_fifo_keeps_submission_order(
    start_lab: LabStarter, policy: str
) -> None:
    lab = start_lab(policy)
    admin = lab.client()
    alice = lab.client(lab.add_user("alice"))
    bob = lab.client(lab.add_user("bob"))
    admin.scheduler_pause("queue first")
    lab.start_agent("a1")
    a1, a2, a3 = alice.submit([_experiment(f"alice-{i}") for i in (1, 2, 3)]).jobs
    admin.scheduler_resume()
    # Alice's first run starts alone: from then on she has usage in the window, Bob none.
    lab.wait_state(a1, ACTIVE)
    admin.scheduler_pause("bob submits")
    (b1,) = bob.submit([_experiment("bob-1")]).jobs
    assert _states(admin, [a2, a3, b1]) == {a2: "queued", a3: "queued", b1: "queued"}
    # The queue view ranks by the same policy (Alice's running run counts as her usage).
    ranked = [q["id"] for q in sorted(admin.queue()["queued"], key=lambda q: q["position"])]
    expected_rank = [b1, a2, a3] if policy == "fairshare" else [a2, a3, b1]
    assert ranked == expected_rank
    admin.scheduler_resume()

    # One target: each start waits for the run before it to finish.
    order = [job for job, _ in lab.wait_assigned(3)]
    if policy == "fairshare":
        # Bob is under his share (no usage), so his run overtakes Alice's queued ones; hers
        # keep their submission order among themselves.
        assert order == [a1, b1, a2], order
        waiting = a3
    else:
        assert order == [a1, a2, a3], order
        waiting = b1
    jobs = admin.jobs()
    assert _started(jobs) == order
    by_id = {j["id"]: j for j in jobs}
    assert by_id[waiting]["state"] == "queued"
    assert all(by_id[j]["target"] == "a1/local" for j in order)
    assert [by_id[j]["state"] for j in order[:2]] == ["succeeded", "succeeded"], lab.logs()
    for earlier, later in itertools.pairwise(order):
        # Strictly one after the other: a run starts once the one before it has ended.
        assert _time(by_id[later]["started_at"]) >= _time(by_id[earlier]["ended_at"])
    # Bob's run was measured for real.
    if policy == "fairshare":
        record = bob.run(by_id[b1]["run_id"])
        assert record["status"] == "succeeded"
        assert record["metrics"]["accuracy"]["accuracy"] > 0.8


# -- reservations -------------------------------------------------------------------------------


def test_reservation_keeps_others_off_its_target_and_runs_must_end_before_the_next(
    start_lab: LabStarter,
) -> None:
    lab = start_lab()
    admin = lab.client()
    holder = lab.client(lab.add_user("rita"))
    other = lab.client(lab.add_user("otto"))
    lab.start_agent("a1")
    lab.wait_registered("a1/local")
    (booking,) = holder.reserve(hours=1, target="a1/local", lend_idle=False, note="demo")
    assert booking["user"] == "rita" and booking["lend_idle"] is False
    # Otto's long run goes first, so FIFO alone would start it before his short one.
    long_run, short_run = other.submit(
        [
            _experiment("otto-long", max_runtime_s=600),
            _experiment("otto-short", max_runtime_s=60),
        ]
    ).jobs

    # The agent is idle and polls (a lease pass at least every second), yet nothing starts.
    time.sleep(2.0)
    assert _states(admin, [long_run, short_run]) == {long_run: "queued", short_run: "queued"}
    assert _assigned(admin) == []
    reasons = _reasons(other)
    for job in (long_run, short_run):
        assert "a1/local reserved by rita until" in reasons[job], reasons

    # The holder's run starts at once, ahead of Otto's older ones.
    (mine,) = holder.submit([_experiment("rita-1", target="a1/local")]).jobs
    done = lab.wait_state(mine, FINAL)
    assert done["state"] == "succeeded", lab.logs()
    time.sleep(1.0)  # idle again, the window still open: Otto still waits
    assert _states(admin, [long_run, short_run]) == {long_run: "queued", short_run: "queued"}
    assert [job for job, _ in _assigned(admin)] == [mine]

    # Swap the window for one starting in two minutes (paused: no pass runs in between).
    admin.scheduler_pause("moving a reservation")
    holder.cancel_reservation(booking["id"])
    later = datetime.now(UTC) + timedelta(seconds=120)
    (upcoming,) = holder.reserve(later, hours=1, target="a1/local", lend_idle=False)
    admin.scheduler_resume()
    # The 60 s run ends before the window: it starts (the target is Otto's for now). The
    # 600 s one would cross into it: it waits, though it is ahead in FIFO order.
    finished = lab.wait_state(short_run, FINAL)
    assert finished["state"] == "succeeded", lab.logs()
    assert finished["target"] == "a1/local"
    time.sleep(1.0)  # idle, the window not started yet: the long run still waits
    assert admin.job(long_run)["state"] == "queued"
    assert [job for job, _ in _assigned(admin)] == [mine, short_run]
    reason = _reasons(other)[long_run]
    assert "a1/local reserved by rita from" in reason, reason
    assert "600" in reason and "cross" in reason, reason
    assert datetime.now(UTC) < _time(upcoming["starts_at"])


# -- disabling a target -------------------------------------------------------------------------


def test_disabled_target_takes_nothing_new_and_the_queue_drains_on_the_other(
    start_lab: LabStarter,
) -> None:
    lab = start_lab()
    admin = lab.client()
    user = lab.client(lab.add_user("uma"))
    operator = lab.client(lab.add_user("olga", "operator"))
    admin.scheduler_pause("agents first")
    lab.start_agent("a1")
    lab.start_agent("a2")
    lab.wait_registered("a1/local", "a2/local")
    jobs = user.submit([_experiment(f"uma-{i}", mode="any") for i in range(4)]).jobs
    admin.scheduler_resume()
    # One pass gives each idle agent a run.
    first = lab.wait_assigned(2, 60)
    assert {message for _, message in first} == {"assigned to a1/local", "assigned to a2/local"}
    view = operator.update_target("a1/local", enabled=False)
    disabled_at = datetime.now(UTC)
    assert view["enabled"] is False and view["health"] == "good"

    final = admin.wait(jobs, progress=False, timeout=150)
    assert [j["state"] for j in final] == ["succeeded"] * 4, lab.logs()
    on_a1 = [j["id"] for j in final if j["target"] == "a1/local"]
    assert len(on_a1) == 1 and on_a1[0] in {job for job, _ in first}
    later = [j for j in final if j["id"] not in {job for job, _ in first}]
    assert len(later) == 2
    for job in later:
        assert job["target"] == "a2/local"
        assert _time(job["started_at"]) > disabled_at
    assert [message for _, message in _assigned(admin)][2:] == ["assigned to a2/local"] * 2
    # a1's agent is still there (online); its target stays disabled.
    a1 = next(t for t in admin.targets() if t["name"] == "a1/local")
    assert a1["enabled"] is False and a1["agent_state"] == "online"


# -- the queue heads a pass reads ----------------------------------------------------------------


def test_short_run_behind_a_long_one_of_its_group_starts_before_a_reservation(lab: Lab) -> None:
    """Service level (no agent process): the same user's long and short runs, same placement,
    a reservation of someone else starting in a minute. The queue view says the short one
    "starts now on ..."; the agent's lease must then hand it over."""
    rita, otto = lab.add_user(), lab.add_user()
    agent = lab.add_agent()
    starts = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    booked = lab.client.post(
        f"{API}/reservations",
        json={"target": agent.targets[0], "starts_at": starts, "hours": 1, "lend_idle": False},
        headers=rita.headers,
    )
    assert booked.status_code == 201, booked.text
    definitions = []
    for name, runtime in (("long", 600), ("short", 30)):
        definition = lab.definition(name)
        definition["target"]["max_runtime_s"] = runtime
        definitions.append(definition)
    _, (long_run, short_run) = lab.submit(otto, *definitions)
    queue = lab.client.get(f"{API}/queue", headers=lab.admin.headers).json()
    reasons = {q["id"]: q["reason"] for q in queue["queued"]}
    assert "cross" in reasons[long_run] and reasons[short_run].startswith("starts now")
    assignment = lab.lease(agent)
    assert assignment is not None and assignment["job_id"] == short_run
