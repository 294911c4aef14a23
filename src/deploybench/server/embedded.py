"""The embedded default (`deploybench up`): the server on 127.0.0.1 with SQLite in the data
folder and one local agent subprocess; credentials kept in ``lab.json`` (mode 600)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploybench.paths import data_home
from deploybench.server.settings import ServerSettings

LAB_FILE = "lab.json"
DEFAULT_PORT = 8765


@dataclass(frozen=True)
class LabCredentials:
    """What the local CLI needs to talk to the embedded server."""

    url: str
    admin_token: str
    agent_token: str


def lab_file(home: Path | None = None) -> Path:
    """Where `deploybench up` keeps its URL and tokens."""
    return (home or data_home()) / LAB_FILE


def read_credentials(home: Path | None = None) -> LabCredentials | None:
    """The embedded server's URL and tokens, if `deploybench up` ran here."""
    path = lab_file(home)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return LabCredentials(data["url"], data["admin_token"], data["agent_token"])


def write_credentials(credentials: LabCredentials, home: Path | None = None) -> Path:
    """Write lab.json readable by its owner only."""
    path = lab_file(home)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials.__dict__, handle)
    os.replace(tmp, path)
    return path


def embedded_settings(home: Path | None = None) -> ServerSettings:
    """SQLite and artifacts in the data folder."""
    folder = home or data_home()
    return ServerSettings(db_url=f"sqlite:///{folder / 'deploybench.db'}", data_dir=folder)


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    """Poll /health until the server answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the server at {url} did not answer within {timeout:g} s")


class LocalAgentProcess:
    """`deploybench agent` as a child in its own session, so it survives a server crash and
    can be stopped with its whole process group."""

    def __init__(self, url: str, token: str, name: str, log: Path) -> None:
        self._argv = [
            sys.executable,
            "-m",
            "deploybench.cli.app",
            "agent",
            "--server",
            url,
            "--token",
            token,
            "--name",
            name,
        ]
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn the agent."""
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                self._argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM (the agent aborts its run and reports), then SIGKILL after ``grace``."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_agent_when_up(url: str, agent: LocalAgentProcess, failed: threading.Event) -> None:
    """Thread body: wait for the server, then start the agent."""
    try:
        wait_until_up(url)
        agent.start()
    except Exception:  # reported by the caller through ``failed``
        failed.set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedLab:
    """Reuse the running embedded lab, or start `deploybench up` as a child for a while."""

    def __init__(self, home: Path | None = None, log: Path | None = None) -> None:
        self._home = home
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.credentials: LabCredentials | None = None

    def __enter__(self) -> LabCredentials:
        known = read_credentials(self._home)
        if known is not None:
            try:
                wait_until_up(known.url, timeout=0.5)
                self.credentials = known
                return known
            except TimeoutError:
                pass  # stale lab.json: start a new server
        port = free_port()
        log = self._log or (self._home or data_home()) / "up.log"
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "deploybench.cli.app", "up", "--port", str(port)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, timeout=60.0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = read_credentials(self._home)
            if found is not None and found.url == url:
                self.credentials = found
                return found
            time.sleep(0.1)
        raise TimeoutError(f"`deploybench up` did not write {lab_file(self._home)}")

    def __exit__(self, *exc: object) -> None:
        """Stop the server we started (SIGTERM: it stops its agent and exits cleanly)."""
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
