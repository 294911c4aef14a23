"""benchmarks/scheduler_sim.py runs end to end at small sizes (``--quick``): the policy
simulation never idles a target a waiting run could use, and the lab dispatch part measures
the throughput of full-farm passes, the hand-over of their jobs and the one-decision steady
state (SQLite; PostgreSQL too when DEPLOYBENCH_TEST_POSTGRES_URL is set), every free target
getting a job."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scheduler_sim.py"


def test_scheduler_sim_quick(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "idle while waiting: 0 target-s ok" in done.stdout, output
    assert re.search(
        r"SQLite.*\n\s+pass throughput: 100 decisions in 5 passes .*: \d+ decisions/s\n"
        r"\s+per pass: 20 decisions,",
        done.stdout,
    ), output
    assert re.search(r"hand-over: 100 leases .*: \d+ leases/s", done.stdout), output
    assert re.search(
        r"steady state, one decision per pass .*\n\s+100 leases .*p50 [\d.]+ ms, p95 [\d.]+ ms"
        r".* -> \d+ decisions/s",
        done.stdout,
    ), output
    assert re.search(
        r"steady-state decisions by user: flood \d+%, steady \d+%, burst \d+%", done.stdout
    ), output
    assert "MISSED" not in done.stdout, output
    assert re.search(
        r"goal: >= 500/s on SQLite \(pass throughput\): (PASS|FAIL) \(\d+/s\)", done.stdout
    ), output
