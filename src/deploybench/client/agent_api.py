"""The calls an agent makes (register, lease, heartbeat, log, finish) and artifact transfer.

Agent calls carry the lease ``epoch``; an answer of 409 (:class:`FenceError`) means the lease
was taken back (expired, re-queued) and the caller must drop the job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploybench.client.base import BaseClient
from deploybench.client.transfer import save_verified, upload_request


class AgentApi(BaseClient):
    """Agent-facing endpoints plus content-addressed artifact transfer."""

    def upload_artifact(self, path: Path) -> str:
        """Upload a file to the server's artifact store; returns its sha256."""
        digest, headers, body = upload_request(Path(path))
        self._request("PUT", f"/artifacts/{digest}", content=body, headers=headers)
        return digest

    def download_artifact(self, sha256: str, dest: Path) -> Path:
        """Download an artifact to ``dest`` (a file path, or an existing folder to put
        ``<sha256>`` in), verified against its sha256 and written atomically."""
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / sha256
        with self._stream(f"/artifacts/{sha256}", read_timeout=self.timeout) as response:
            return save_verified(response, sha256, dest)

    def register_agent(self, name: str, version: str, targets: list[dict[str, Any]]) -> list[str]:
        """Declare this agent and its targets; returns their farm-wide names."""
        answer = self._json(
            "POST", "/agents/register", json={"name": name, "version": version, "targets": targets}
        )
        return list(answer["targets"])

    def lease(self, agent: str, free: list[str], wait: float) -> dict[str, Any] | None:
        """Long-poll for a job on one of the ``free`` targets: the assignment, or None when
        nothing came within ``wait`` seconds (HTTP 204)."""
        response = self._request(
            "POST",
            f"/agents/{agent}/lease",
            json={"free": free, "wait": wait},
            timeout=wait + self.timeout,  # the server holds the answer for up to `wait`
        )
        if response.status_code == 204 or not response.content:
            return None
        assignment: dict[str, Any] = response.json()
        return assignment

    def heartbeat(self, job_id: str, epoch: int, phase: str | None = None) -> str | None:
        """Extend the lease; returns the cancel request ("abort", "suspend") or None."""
        answer = self._json(
            "POST", f"/jobs/{job_id}/heartbeat", json={"epoch": epoch, "phase": phase}
        )
        cancel = (answer or {}).get("cancel")
        return str(cancel) if cancel else None

    def post_log(self, job_id: str, epoch: int, lines: list[str]) -> None:
        """Append log lines to the job's events."""
        if lines:
            self._request("POST", f"/jobs/{job_id}/log", json={"epoch": epoch, "lines": lines})

    def finish(
        self,
        job_id: str,
        epoch: int,
        record: dict[str, Any] | None = None,
        failure_kind: str | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """Close the attempt: with a record (artifacts uploaded first), with a failure, or
        with neither after a cancel. Idempotent for the same epoch."""
        body: dict[str, Any] = {"epoch": epoch}
        if record is not None:
            body["record"] = record
        if failure_kind is not None:
            body["failure_kind"] = failure_kind
        if message is not None:
            body["message"] = message
        job: dict[str, Any] = self._json("POST", f"/jobs/{job_id}/finish", json=body)
        return job
