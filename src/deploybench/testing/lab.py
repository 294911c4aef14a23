"""Helpers for tests that drive a lab server through the client."""

from __future__ import annotations

import time
from typing import Any

from deploybench.client import Client


def wait_for_state(
    client: Client, job_id: str, states: set[str], timeout: float = 60, poll: float = 0.1
) -> dict[str, Any]:
    """Poll a job until it is in one of ``states``; AssertionError with its last state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id)
        if job["state"] in states:
            return job
        time.sleep(poll)
    raise AssertionError(f"job {job_id} never reached {states}: {client.job(job_id)}")
