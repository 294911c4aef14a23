"""``deploybench agent``: read agent.yaml, build the agent, run it until told to stop.

SIGTERM or Ctrl-C once: finish the current job, then stop. Twice: abort the current
measurement (reported as an infrastructure failure, so the server runs it again) and stop.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploybench.errors import SpecError

log = logging.getLogger(__name__)


class AgentConfig(BaseModel):
    """agent.yaml: which target plugins this agent drives and where it keeps its files."""

    model_config = ConfigDict(extra="forbid")

    targets: list[str] = Field(
        default_factory=lambda: ["local"], min_length=1, description="Target plugin names."
    )
    workdir: Path | None = Field(default=None, description="Per-job work folders (wiped).")
    journal: Path | None = Field(default=None, description="The crash journal (SQLite file).")
    poll_wait: float = Field(default=20.0, gt=0, le=30, description="Long-poll length, seconds.")
    heartbeat_interval: float = Field(default=5.0, gt=0, description="Seconds between beats.")
    kill_grace: float = Field(default=5.0, ge=0, description="SIGTERM to SIGKILL, seconds.")


def load_agent_config(path: Path) -> AgentConfig:
    """Validate agent.yaml; relative folders in it start at the file's folder."""
    from deploybench.spec import format_validation_error

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the agent configuration ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the top level must be a mapping such as `targets: [local]`")
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(exc, AgentConfig)
        raise SpecError(f"{path} is invalid:\n  " + "\n  ".join(lines)) from None
    base = path.resolve().parent
    return config.model_copy(
        update={
            "workdir": base / config.workdir if config.workdir else None,
            "journal": base / config.journal if config.journal else None,
        }
    )


@contextmanager
def _signals(stop: threading.Event, abort: Callable[[], None]) -> Iterator[None]:
    """First SIGTERM/SIGINT sets ``stop``, the second calls ``abort`` in a thread of its own
    (stopping a process tree blocks, which a signal handler must not). Only the main thread
    may install handlers; elsewhere the caller's ``stop`` event is the way to stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("aborting the current job and stopping")
            threading.Thread(target=abort, name="agent-abort", daemon=True).start()
        else:
            log.warning("stopping after the current job (signal again to abort it)")
            stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_agent(
    server: str,
    token: str,
    name: str | None,
    config: Path | None,
    stop: threading.Event | None = None,
) -> None:
    """Run an agent against ``server`` until stopped (the `deploybench agent` command)."""
    from deploybench.agent.agent import Agent
    from deploybench.client import Client
    from deploybench.paths import data_home
    from deploybench.runner.preparation import load_target

    settings = load_agent_config(config) if config is not None else AgentConfig()
    name = name or socket.gethostname()
    targets = [load_target(plugin) for plugin in dict.fromkeys(settings.targets)]
    home = data_home() / "agents" / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    stop = stop or threading.Event()
    with Client(server, token, timeout=30.0) as client:
        agent = Agent(
            client,
            name,
            targets=targets,
            workdir=settings.workdir or home / "work",
            journal=settings.journal or home / "journal.sqlite",
            poll_wait=settings.poll_wait,
            heartbeat_interval=settings.heartbeat_interval,
            kill_grace=settings.kill_grace,
        )
        with _signals(stop, agent.abort_current):
            agent.run_forever(stop)
