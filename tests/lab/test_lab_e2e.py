"""Real sockets, real processes: a server and two agents on 127.0.0.1 running real ONNX
Runtime experiments; kill -9 of an agent and of the server mid-campaign; SIGTERM of `up`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploybench.client import Client
from deploybench.server.embedded import free_port, read_credentials, wait_until_up
from deploybench.testing.experiments import FAST_PLAN
from deploybench.testing.lab import wait_for_state

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "deploybench.cli.app"]


def _experiment(name: str, **plan: Any) -> dict[str, Any]:
    return {
        "name": name,
        "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
        "toolchain": {"name": "onnxruntime"},
        "environment": {"threads": 1},
        "measurement": {**FAST_PLAN, "repetitions": 1, **plan},
    }


@dataclass
class Farm:
    """A server and its agents as child processes sharing one data folder."""

    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, name: str, role: str) -> str:
        out = subprocess.run(
            [*CLI, "user", "add", name, "--role", role],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def start_server(self) -> None:
        log = (self.home / "server.log").open("ab")
        self.server = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port), "--lease-ttl", "4"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until_up(self.url, timeout=60)

    def start_agent(self, name: str, token: str) -> None:
        log = (self.home / f"agent-{name}.log").open("ab")
        self.agents[name] = subprocess.Popen(
            [*CLI, "agent", "--server", self.url, "--token", token, "--name", name],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, process: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL) -> None:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(30)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in self.home.glob("*.log")
        )


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    env = {**os.environ, "DEPLOYBENCH_HOME": str(tmp_path / "home")}
    env.pop("DEPLOYBENCH_DB_URL", None)
    (tmp_path / "home").mkdir()
    farm = Farm(tmp_path / "home", env)
    try:
        yield farm
    finally:
        for agent in farm.agents.values():
            farm.kill(agent)
        farm.kill(farm.server)


def test_two_agents_run_a_campaign(farm: Farm) -> None:
    admin = farm.token("admin", "admin")
    farm.start_server()
    for name in ("a1", "a2"):
        farm.start_agent(name, farm.token(f"agent-{name}", "agent"))
    with Client(farm.url, admin) as client:
        submission = client.submit([_experiment(f"e{i}") for i in range(4)], name="e2e")
        jobs = client.wait(submission.campaign, progress=False, timeout=240)
        assert [j["state"] for j in jobs] == ["succeeded"] * 4, farm.logs()
        assert {j["target"] for j in jobs} == {"a1/local", "a2/local"}
        record = client.run(jobs[0]["run_id"])
        assert record["status"] == "succeeded"
        assert record["metrics"]["accuracy"]["accuracy"] > 0.9
        assert client.logs(jobs[0]["id"])  # timestamped actions of the run
        assert len(client.runs()) == 4
    # The CLI's remote commands go through the same client.
    remote = ["--server", farm.url, "--token", admin]
    listed = subprocess.run(
        [*CLI, "runs", "list", "--json", *remote], env=farm.env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.strip().splitlines()) == 4
    shown = subprocess.run(
        [*CLI, "runs", "show", jobs[0]["run_id"], *remote],
        env=farm.env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and "validity" in shown.stdout, shown.stderr
    status = subprocess.run(
        [*CLI, "status", submission.campaign, *remote],
        env=farm.env,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and status.stdout.count("succeeded") == 4, status.stdout


def test_agent_killed_mid_run_the_run_is_requeued_and_completes(farm: Farm) -> None:
    admin = farm.token("admin", "admin")
    farm.start_server()
    farm.start_agent("a1", farm.token("agent-a1", "agent"))
    with Client(farm.url, admin) as client:
        job_id = client.submit([_experiment("long", min_duration=3.0)]).jobs[0]
        wait_for_state(client, job_id, {"running"})
        time.sleep(1.0)
        farm.kill(farm.agents["a1"])  # kill -9 of the whole agent group, mid-measurement
        farm.start_agent("a2", farm.token("agent-a2", "agent"))
        job = client.wait(job_id, progress=False, timeout=180)[0]
        assert job["state"] == "succeeded", farm.logs()
        assert job["attempt"] == 2 and job["target"] == "a2/local"
        kinds = [e["kind"] for e in client.logs(job_id)]
        assert "retry" in kinds


def test_server_killed_mid_campaign_loses_and_duplicates_nothing(farm: Farm) -> None:
    admin = farm.token("admin", "admin")
    farm.start_server()
    farm.start_agent("a1", farm.token("agent-a1", "agent"))
    with Client(farm.url, admin) as client:
        submission = client.submit([_experiment(f"s{i}", min_duration=1.0) for i in range(3)])
        wait_for_state(client, submission.jobs[0], {"running"})
    farm.kill(farm.server)  # kill -9 while a run is in flight
    time.sleep(2.0)
    farm.start_server()
    with Client(farm.url, admin) as client:
        jobs = client.wait(submission.campaign, progress=False, timeout=240)
        assert [j["state"] for j in jobs] == ["succeeded"] * 3, farm.logs()
        run_ids = [j["run_id"] for j in jobs]
        assert len(set(run_ids)) == 3
        assert sorted(r["id"] for r in client.runs()) == sorted(run_ids)


def test_up_starts_a_local_agent_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "DEPLOYBENCH_HOME": str(tmp_path)}
    port = free_port()
    up = subprocess.Popen(
        [*CLI, "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 10
        while read_credentials(tmp_path) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        credentials = read_credentials(tmp_path)
        assert credentials is not None
        assert oct((tmp_path / "lab.json").stat().st_mode & 0o777) == "0o600"
        with Client(credentials.url, credentials.admin_token) as client:
            job_id = client.submit([_experiment("up")]).jobs[0]
            assert client.wait(job_id, progress=False, timeout=120)[0]["state"] == "succeeded"
        os.kill(up.pid, signal.SIGTERM)
        stdout, stderr = up.communicate(timeout=60)
        assert up.returncode == 0, stderr.decode()
        assert credentials.admin_token in stdout.decode()  # printed once on first start
        assert "stopped" in stderr.decode()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
