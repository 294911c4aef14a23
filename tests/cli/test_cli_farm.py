"""The farm commands (queue, usage, reservations, targets, scheduler, broadcast, job controls)
against a real lab server on 127.0.0.1, as operators and users would type them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from deploybench.cli.app import app
from deploybench.cli.render_farm import render_queue
from deploybench.client import Client
from deploybench.server.app import bootstrap_admin, create_app
from deploybench.server.embedded import free_port, wait_until_up
from deploybench.server.settings import ServerSettings


@dataclass
class Farm:
    """A running server and the tokens of an admin, an operator and two users."""

    url: str
    admin: str
    operator: str
    ann: str
    bob: str
    folder: Path
    _agents: int = 0

    def cli(self, token: str, *args: str) -> Result:
        env = {"DEPLOYBENCH_SERVER": self.url, "DEPLOYBENCH_TOKEN": token}
        return CliRunner().invoke(app, list(args), env=env)

    def ok(self, token: str, *args: str) -> Result:
        result = self.cli(token, *args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        return result

    def refused(self, token: str, *args: str) -> str:
        """Expect exit 2 with an ``error:`` line; return stderr."""
        result = self.cli(token, *args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr, result.exception)
        assert "error: " in result.stderr and "Traceback" not in result.stderr
        return result.stderr

    def client(self, token: str) -> Client:
        return Client(self.url, token, timeout=10)

    def add_agent(self) -> tuple[str, str, str]:
        """A new agent with one `local` target: (agent name, its token, target name)."""
        self._agents += 1
        name = f"cli-agent{self._agents}"
        token = self.client(self.admin).add_user(f"{name}-account", "agent")["token"]
        [target] = self.client(token).register_agent(name, "test", [{"name": "local"}])
        return name, token, target

    def submit(self, token: str, name: str, target: str = "local") -> str:
        """Queue one experiment (local files, uploaded by the client); its job id."""
        experiment = {
            "name": name,
            "problem": {
                "model": str(self.folder / "m.onnx"),
                "dataset": str(self.folder / "d.npz"),
                "task": "classification",
            },
            "toolchain": {"name": "onnxruntime"},
            "target": {"name": target},
        }
        return self.client(token).submit(experiment).jobs[0]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    import uvicorn

    folder = tmp_path_factory.mktemp("cli-farm")
    (folder / "m.onnx").write_bytes(b"model")
    (folder / "d.npz").write_bytes(b"dataset")
    settings = ServerSettings(
        db_url=f"sqlite:///{folder / 'lab.db'}", data_dir=folder / "data", sweep_interval=0.2
    )
    application = create_app(settings)
    admin = bootstrap_admin(application)
    assert admin is not None
    port = free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        with Client(url, admin) as client:
            tokens = {
                name: client.add_user(name, role)["token"]
                for name, role in (("oper", "operator"), ("ann", "user"), ("bob", "user"))
            }
        yield Farm(url, admin, tokens["oper"], tokens["ann"], tokens["bob"], folder)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _iso(delta: timedelta) -> str:
    return (datetime.now().astimezone() + delta).isoformat(timespec="minutes")


def test_queue_shows_broadcasts_targets_and_the_queue(farm: Farm) -> None:
    _, _, target = farm.add_agent()
    job = farm.submit(farm.ann, "queued-exp", target)
    sent = farm.ok(farm.operator, "broadcast", "farm down at six", "--hours", "2")
    assert "broadcast" in sent.stderr and "sent" in sent.stderr

    shown = farm.ok(farm.ann, "queue").stdout
    assert "farm down at six" in shown and "[oper," in shown
    for text in (target, job, "queued-exp", "ann", "good", "estimated start"):
        assert text in shown, text

    view = json.loads(farm.ok(farm.ann, "queue", "--json").stdout)
    [mine] = [q for q in view["queued"] if q["id"] == job]
    assert mine["owner"] == "ann" and mine["position"] >= 1 and mine["reason"]
    assert "queued-exp" not in farm.ok(farm.bob, "queue").stdout  # others' runs are a count

    status = farm.ok(farm.ann, "status").stdout
    assert status.index("farm down at six") < status.index(job)  # broadcasts on top


def test_the_queue_renderer_tolerates_missing_keys() -> None:
    import io

    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    render_queue(
        {"queued": [{"id": "job-1"}], "running": [{}], "targets": [{"name": "t"}]}, console
    )
    render_queue({}, console)
    text = console.export_text()
    assert "job-1" in text and "queued (1)" in text and "queued (0)" in text


def test_scheduler_pause_and_resume(farm: Farm) -> None:
    stderr = farm.refused(farm.ann, "scheduler", "pause")  # a 403 shows the server's message
    assert "pausing the scheduler needs the role operator or admin; you are user" in stderr
    farm.ok(farm.operator, "scheduler", "pause", "--message", "moving racks")
    try:
        assert "PAUSED by oper" in farm.ok(farm.ann, "queue").stdout
        assert "moving racks" in farm.ok(farm.ann, "status").stdout
        state = json.loads(farm.ok(farm.ann, "scheduler", "status", "--json").stdout)
        assert state["paused"]["message"] == "moving racks"
    finally:
        farm.ok(farm.operator, "scheduler", "resume")
    assert "PAUSED" not in farm.ok(farm.ann, "queue").stdout
    assert "scheduler running" in farm.ok(farm.ann, "scheduler", "status").stdout


def test_reservations_add_list_and_cancel(farm: Farm) -> None:
    _, _, target = farm.add_agent()
    farm.ok(farm.operator, "targets", "tag", target, "cli-tag", "fast")
    made = farm.ok(
        farm.ann, "reservations", "add", "--target", target, "--hours", "1", "--note", "x"
    )
    [first] = [int(line) for line in made.stdout.split()]
    assert f"reservation {first}: {target}" in made.stderr
    later = farm.ok(
        farm.ann,
        "reservations",
        "add",
        "--tag",
        "cli-tag",
        "--start",
        _iso(timedelta(hours=3)),
        "--end",
        _iso(timedelta(hours=4)),
        "--no-lend-idle",
    )
    second = int(later.stdout)

    listed = json.loads(farm.ok(farm.bob, "reservations", "list", "--json").stdout)
    mine = {r["id"]: r for r in listed if r["user"] == "ann"}
    assert set(mine) == {first, second} and mine[second]["lend_idle"] is False
    table = farm.ok(farm.bob, "reservations", "list").stdout
    assert target in table and "ann" in table

    clash = farm.refused(farm.bob, "reservations", "add", "--target", target, "--hours", "1")
    assert "already reserved by ann" in clash
    assert "belongs to another user" in farm.refused(farm.bob, "reservations", "cancel", str(first))
    farm.ok(farm.ann, "reservations", "cancel", str(first))
    farm.ok(farm.operator, "reservations", "cancel", str(second))
    assert [r for r in farm.client(farm.ann).reservations() if r["user"] == "ann"] == []
    every = farm.ok(farm.ann, "reservations", "list", "--all").stdout
    assert "canceled" in every

    # bad input never reaches the server: exit 2 with the fix
    assert "--hours H" in farm.refused(farm.ann, "reservations", "add", "--target", target)
    assert "ISO 8601" in farm.refused(
        farm.ann, "reservations", "add", "--target", target, "--start", "soon", "--hours", "1"
    )
    assert "more than 0" in farm.refused(
        farm.ann, "reservations", "add", "--target", target, "--hours", "0"
    )
    assert "--target NAME" in farm.refused(farm.ann, "reservations", "add", "--hours", "1")


def test_targets_disable_enable_and_maintenance(farm: Farm) -> None:
    _, _, target = farm.add_agent()
    assert "disabled" in farm.ok(farm.operator, "targets", "disable", target).stdout
    listed = json.loads(farm.ok(farm.ann, "targets", "list", "--json").stdout)
    assert {t["name"]: t["enabled"] for t in listed}[target] is False
    assert target in farm.ok(farm.ann, "targets", "list").stdout
    enabled = farm.ok(farm.operator, "targets", "enable", target).stdout
    assert "enabled" in enabled and "good" in enabled
    done = farm.ok(
        farm.operator, "targets", "maintenance", target, "--hours", "2", "-m", "new fan"
    ).stdout
    assert "maintenance" in done and "new fan" in done
    assert "new fan" in farm.ok(farm.ann, "queue").stdout
    retired = farm.ok(farm.operator, "targets", "retire", target, "-m", "too old").stdout
    assert "retired" in retired and "too old" in retired
    assert "--until or --hours" in farm.refused(
        farm.operator, "targets", "maintenance", target, "--until", _iso(timedelta(hours=1)),
        "--hours", "1",
    )  # fmt: skip
    assert (
        "no target 'nowhere/local'"
        in farm.cli(farm.operator, "targets", "disable", "nowhere/local").stderr
    )
    stderr = farm.refused(farm.ann, "targets", "disable", target)
    assert "changing a target needs the role operator or admin" in stderr


def test_job_controls_and_usage(farm: Farm) -> None:
    name, token, target = farm.add_agent()
    first = farm.submit(farm.ann, "first", target)
    second = farm.submit(farm.ann, "second", target)
    farm.ok(farm.operator, "priority", second, "4")
    assert farm.client(farm.ann).job(second)["priority"] == 4
    farm.ok(farm.operator, "start", first)
    assert farm.client(farm.ann).job(first)["priority"] > 4
    assert "operator" in farm.refused(farm.ann, "start", second)
    assert farm.cli(farm.operator, "priority", second, "high").exit_code == 2  # not a number

    stopped = farm.ok(farm.ann, "stop", second)
    assert "1 job(s) stopped" in stopped.stderr
    assert farm.client(farm.ann).job(second)["state"] == "held"
    farm.ok(farm.ann, "resume", second)
    assert farm.client(farm.ann).job(second)["state"] == "queued"

    assignment = farm.client(token).lease(name, [target], wait=0)  # usage counts from here
    assert assignment is not None and assignment["job_id"] == first
    report = json.loads(farm.ok(farm.ann, "usage", "--days", "1", "--json").stdout)
    assert target in [r["target"] for r in report["per_target"]]  # other tests' runs too
    assert {r["user"] for r in report["per_day"]} == {"ann"}  # users see their own only
    shown = farm.ok(farm.operator, "usage").stdout
    for text in ("per user per day", "per user per target", "fair share", "ann", target):
        assert text in shown, text
    assert farm.cli(farm.ann, "usage", "--days", "0").exit_code == 2
    farm.ok(farm.ann, "abort", first)
    farm.ok(farm.ann, "abort", second)


def test_target_names_keep_their_slash_in_urls() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"name": "x"})

    client = Client("http://lab.test", "dbt_x", transport=httpx.MockTransport(handler))
    client.update_target("host-1/local gpu", enabled=False)
    client.check_target("host-1/local")
    assert [r.url.raw_path for r in seen] == [
        b"/api/v1/targets/host-1/local%20gpu",
        b"/api/v1/targets/host-1/local/check",
    ]
    assert json.loads(seen[0].content) == {"enabled": False}
