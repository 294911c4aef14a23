"""The lab agent: registers its targets, leases jobs over HTTP and runs them one at a time.

An agent only talks HTTP with its own token; it never holds database credentials. It runs one
job at a time even when it drives several targets: two measurements on one host disturb each
other's timings, so a host's targets are leased only while the agent is idle.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from deploybench import __version__
from deploybench.agent.job import AGENT_STOPPED, JobRun, deliver
from deploybench.agent.journal import Journal, JournalEntry, RecoveryAction, read_outcome
from deploybench.agent.journal import recovery_action as decide
from deploybench.agent.process import ExecutorPool, kill_tree
from deploybench.agent.retry import Backoff, is_transient, retrying
from deploybench.client.client import Client
from deploybench.errors import DeploybenchError
from deploybench.services.auth import AuthError, ForbiddenError
from deploybench.services.lab import FenceError, NotFoundError
from deploybench.targets.base import Target

log = logging.getLogger(__name__)

RESTARTED = "agent restarted mid-run"


class Agent:
    """Runs lab jobs on this host's targets (default: the local CPU)."""

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        targets: list[Target] | None = None,
        workdir: Path,
        journal: Path,
        poll_wait: float = 20.0,
        heartbeat_interval: float = 5.0,
        kill_grace: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        if targets is None:
            from deploybench.targets.local import LocalCpuTarget

            targets = [LocalCpuTarget()]
        self.client, self.name, self.targets = client, name, targets
        self.workdir = workdir
        self.journal = Journal(journal)
        self.poll_wait, self.heartbeat_interval = poll_wait, heartbeat_interval
        self.kill_grace = kill_grace
        self.backoff = backoff or Backoff()
        self.halt = threading.Event()  # set by abort_current: give up waiting for the server
        self.registered: list[str] = []
        self.current: JobRun | None = None
        self._recovered = False
        self.pool = ExecutorPool()

    def register(self) -> list[str]:
        """Declare the targets; returns their farm-wide names ("agent/plugin")."""
        infos = [t.describe().model_dump(mode="json") for t in self.targets]
        self.registered = retrying(
            lambda: self.client.register_agent(self.name, __version__, infos), self.backoff
        )
        log.info("agent %s registered targets %s", self.name, ", ".join(self.registered))
        return self.registered

    # -- recovery ------------------------------------------------------------------------------

    def recover(self) -> int:
        """Settle the attempts a previous run of this agent left unfinished, then clear the
        work folder so no user's files outlive their job. Returns how many were settled."""
        entries = self.journal.entries(pending_only=True)
        for entry in entries:
            self._recover_one(entry)
        if self.workdir.is_dir():
            for leftover in self.workdir.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
        self._recovered = True
        return len(entries)

    def _recover_one(self, entry: JournalEntry) -> None:
        if entry.pid is not None:
            # The measurement outlived the agent (its own session): it would disturb the
            # next job's timings, and nobody is heartbeating its lease any more.
            kill_tree(entry.pid, self.kill_grace, entry.pid_started)
        try:
            message = RESTARTED
            if decide(entry) is RecoveryAction.DELIVER:
                message = self._redeliver(entry)
            if message:
                log.info("reporting %s as lost (%s)", entry.job_id, message)
                retrying(
                    lambda: self.client.finish(
                        entry.job_id, entry.epoch, failure_kind="infrastructure", message=message
                    ),
                    self.backoff,
                )
        except (FenceError, NotFoundError):
            pass  # the server already re-queued (or forgot) it: nothing left to report
        self.journal.done(entry.job_id, entry.attempt)
        shutil.rmtree(entry.workdir, ignore_errors=True)

    def _redeliver(self, entry: JournalEntry) -> str:
        """Deliver a record found on disk; the failure message to report instead, or ""."""
        outcome = read_outcome(entry.outcome_path)
        assert outcome is not None
        log.info("delivering the record of %s left by a restart", entry.job_id)
        try:
            deliver(self.client, entry.job_id, entry.epoch, outcome, set(), self.backoff, self.halt)
        except (FenceError, NotFoundError, AuthError, ForbiddenError):
            raise
        except DeploybenchError as exc:
            if is_transient(exc):
                raise
            return f"{RESTARTED}; its record could not be delivered: {exc}"
        return ""

    # -- the loop ------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Lease one job (waiting up to ``poll_wait`` s) and run it; True if one was run."""
        if not self._recovered or self.journal.entries(pending_only=True):
            self.recover()
        if not self.registered:
            self.register()
            self.pool.warm()
        assignment = retrying(
            lambda: self.client.lease(self.name, self.registered, self.poll_wait), self.backoff
        )
        if assignment is None:
            return False
        job_id, attempt = assignment["job_id"], assignment["attempt"]
        log.info("job %s attempt %s on %s", job_id, attempt, assignment.get("target"))
        run = JobRun(
            self.client,
            self.journal,
            assignment,
            self.workdir / f"{job_id}-{attempt}",
            heartbeat_interval=self.heartbeat_interval,
            kill_grace=self.kill_grace,
            backoff=self.backoff,
            halt=self.halt,
            pool=self.pool,
        )
        self.current = run
        try:
            run.run()
        finally:
            self.current = None
            if not self.halt.is_set():
                self.pool.warm()  # the next job's process starts while we wait for work
        return True

    def run_forever(self, stop: threading.Event) -> None:
        """Run jobs until ``stop`` is set (checked between jobs and long-polls). A server
        outage longer than the retries is waited out; other errors end the loop."""
        wait = self.backoff.delays()
        try:
            while not stop.is_set() and not self.halt.is_set():
                try:
                    self.run_once()
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    delay = min(wait(), 30.0)
                    log.warning("%s; trying again in %.0f s", exc, delay)
                    stop.wait(delay)
                else:
                    wait = self.backoff.delays()
        finally:
            self.pool.close()

    def abort_current(self, reason: str = AGENT_STOPPED) -> None:
        """Stop the running measurement now (second Ctrl-C, shutdown): it is reported as an
        infrastructure failure so the server runs it again elsewhere or later."""
        self.halt.set()
        run = self.current
        if run is not None:
            run.cancel(reason)
