"""Carry out one assignment: download, measure (in a subprocess), upload, finish, wipe."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from deploybench.agent.heartbeat import FENCED, Heartbeat
from deploybench.agent.journal import EntryState, Journal, read_outcome
from deploybench.agent.process import PROGRESS_PREFIX, ExecutorPool, Measurement
from deploybench.agent.retry import Backoff, is_transient, retrying
from deploybench.client.agent_api import AgentApi
from deploybench.errors import DeploybenchError
from deploybench.services.auth import AuthError, ForbiddenError
from deploybench.services.lab import FenceError
from deploybench.services.lab_submit import input_file_name

log = logging.getLogger(__name__)

AGENT_STOPPED = "agent-stop"
"""Cancel reason when the agent itself is shutting down (reported as infrastructure)."""

# The runner's phases, as the lab reports them.
_PHASES = {"resolve": "build", "build": "build"}


class LeaseLostError(DeploybenchError):
    """The server took the lease back (409): drop the job without reporting it."""


def deliver(
    api: AgentApi,
    job_id: str,
    epoch: int,
    outcome: dict[str, Any],
    skip: set[str],
    backoff: Backoff,
    halt: threading.Event,
    before_finish: Callable[[], None] = lambda: None,
) -> None:
    """Upload the record's artifacts (those the server surely has are skipped), then
    finish with it; ``before_finish`` runs in between (the last heartbeat and log lines)."""
    record = outcome["record"]
    wanted = record.get("artifacts", {})
    for name, path in outcome.get("artifacts", {}).items():
        if wanted.get(name) in skip:
            continue
        digest = retrying(partial(api.upload_artifact, Path(path)), backoff, halt)
        if name in wanted and digest != wanted[name]:
            raise DeploybenchError(f"artifact {name} changed after its record was made")
    before_finish()
    retrying(lambda: api.finish(job_id, epoch, record=record), backoff, halt)


class JobRun:
    """One attempt of a job on this agent; :meth:`cancel` may come from any thread."""

    def __init__(
        self,
        api: AgentApi,
        journal: Journal,
        assignment: dict[str, Any],
        workdir: Path,
        *,
        heartbeat_interval: float,
        kill_grace: float,
        backoff: Backoff,
        halt: threading.Event,
        pool: ExecutorPool | None = None,
    ) -> None:
        self.api, self.journal, self.assignment = api, journal, assignment
        self.job_id: str = assignment["job_id"]
        self.attempt: int = assignment["attempt"]
        self.epoch: int = assignment["epoch"]
        self.workdir = workdir
        self.kill_grace, self.backoff, self.halt = kill_grace, backoff, halt
        self.pool = pool
        self.reason: str | None = None
        self._measurement: Measurement | None = None
        self._lock = threading.Lock()
        interval = min(heartbeat_interval, float(assignment.get("lease_ttl", 30.0)) / 3)
        self.heartbeat = Heartbeat(api, self.job_id, self.epoch, interval, self.cancel)

    def cancel(self, reason: str) -> None:
        """Stop the job: "abort"/"suspend" from the server, FENCED, or AGENT_STOPPED."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
                log.info("job %s: stopping (%s)", self.job_id, reason)
            measurement = self._measurement
        if measurement is not None:
            measurement.stop(self.kill_grace)

    def phase(self, name: str) -> None:
        self.heartbeat.set_phase(name)
        self.journal.update(self.job_id, self.attempt, phase=name)

    def run(self) -> None:
        """Do the whole attempt; the work dir is wiped unless an undelivered record must
        survive for the next start (the server could not be reached and the agent halted)."""
        entry = self.journal.begin(self.job_id, self.attempt, self.epoch, self.workdir)
        settled = False
        try:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir.mkdir(parents=True)
            self.heartbeat.start()
            self._settle(self._attempt())
            settled = True
        except (LeaseLostError, FenceError):
            log.warning("job %s: the lease was taken back; dropping it", self.job_id)
            settled = True
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, AuthError | ForbiddenError):
                raise  # left pending in the journal: settled when the server is back
            # A bug or a refused upload must not take the agent down with it.
            log.exception("job %s failed in the agent", self.job_id)
            settled = self._report_internal(exc)
        finally:
            self.heartbeat.stop()
            if settled:
                self.journal.done(self.job_id, self.attempt)
            if settled or read_outcome(entry.outcome_path) is None:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _report_internal(self, exc: Exception) -> bool:
        """Report an error of the agent itself; True when the server took the report."""
        try:
            self.api.finish(
                self.job_id, self.epoch, failure_kind="internal", message=f"agent error: {exc}"
            )
        except FenceError:
            return True
        except DeploybenchError:
            return False
        return True

    def _attempt(self) -> dict[str, Any]:
        """The outcome: a record, or ``{"failure": {kind, message}}``, or ``{}`` after a
        cancel from the server."""
        try:
            job_file = self._download()
        except (DeploybenchError, OSError) as exc:
            return {"failure": {"kind": "infrastructure", "message": f"download failed: {exc}"}}
        self.phase("build")  # preparation and build come first in the measurement process
        outcome_file = self.workdir / "outcome.json"
        with self._lock:
            if self.reason is None:
                self._measurement = Measurement(
                    job_file,
                    outcome_file,
                    self._on_line,
                    self.pool.take() if self.pool is not None else None,
                )
            measurement = self._measurement
        code: int | None = None
        if measurement is not None:
            self.journal.update(
                self.job_id, self.attempt, pid=measurement.pid, pid_started=measurement.started
            )
            code = measurement.wait()
        if self.reason == FENCED:
            raise LeaseLostError(self.job_id)
        if self.reason == AGENT_STOPPED:
            return {"failure": {"kind": "infrastructure", "message": "the agent was stopped"}}
        if self.reason is not None:
            return {}
        outcome = read_outcome(outcome_file)
        if outcome is None:
            return {
                "failure": {
                    "kind": "infrastructure",
                    "message": f"the measurement process died without a record (exit {code})",
                }
            }
        return outcome

    def _download(self) -> Path:
        self.phase("download")
        definition = self.assignment["definition"]
        inputs = self.workdir / "inputs"
        paths: dict[str, str] = {}
        for what, default in (("model", ".onnx"), ("dataset", ".npz")):
            digest = self.assignment["inputs"][what]
            dest = inputs / input_file_name(definition, what, default)
            self.heartbeat.log(f"downloading {what} {digest[:12]}")
            retrying(partial(self.api.download_artifact, digest, dest), self.backoff)
            paths[what] = str(dest)
        job = {"job_id": self.job_id, "definition": definition, **paths}
        job_file = self.workdir / "job.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        return job_file

    def _on_line(self, line: str) -> None:
        if line.startswith(PROGRESS_PREFIX):
            phase, _, counts = line.removeprefix(PROGRESS_PREFIX).partition(" ")
            self.heartbeat.set_phase(_PHASES.get(phase, "measure"))
            self.heartbeat.log(f"{phase} {counts.replace(' ', '/')}")
        elif line.strip():
            self.heartbeat.log(line)

    def _settle(self, outcome: dict[str, Any]) -> None:
        """Tell the server how the attempt ended."""
        if isinstance(outcome.get("record"), dict):
            self.journal.update(self.job_id, self.attempt, state=EntryState.PRODUCED)
            self.phase("upload")
            status = outcome["record"].get("status")
            self.heartbeat.log(f"run {outcome['record'].get('id')} {status}; uploading artifacts")
            skip = set(self.assignment["inputs"].values())
            # Until the server answers: nothing else can run meanwhile, and giving up would
            # throw the measurement away. Only a halt (second signal) stops this.
            forever = Backoff(attempts=None, maximum=self.backoff.maximum)
            deliver(
                self.api,
                self.job_id,
                self.epoch,
                outcome,
                skip,
                forever,
                self.halt,
                before_finish=self.heartbeat.stop,
            )
            return
        failure = outcome.get("failure")
        if failure:
            self.heartbeat.log(f"failed ({failure['kind']}): {failure['message']}")
            self.heartbeat.stop()  # last lines out; no beat may follow the finish
            retrying(
                lambda: self.api.finish(
                    self.job_id,
                    self.epoch,
                    failure_kind=failure["kind"],
                    message=failure["message"],
                ),
                self.backoff,
            )
            return
        self.heartbeat.log(f"measurement stopped ({self.reason})")
        self.heartbeat.stop()
        retrying(lambda: self.api.finish(self.job_id, self.epoch), self.backoff)
