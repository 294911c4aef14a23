"""Lab overhead: for a quick experiment on the embedded default (`deploybench up`: SQLite, one
local agent), the time from submit to result, minus what the same run costs without the lab.

"Without the lab" is the same experiment executed in this process by the runner (build,
reference run, worker processes, metrics): what remains is the lab's own cost (HTTP, queue,
lease, input download, the agent's execution process, artifact upload, storing). Both are
measured in this one run, interleaved. Goal: at most 1.0 s per run.

    python benchmarks/lab_overhead.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUICK: dict[str, Any] = {
    "name": "lab-overhead",
    "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
    "toolchain": {"name": "onnxruntime", "config": {"graph_optimization": "all"}},
    "environment": {"threads": 1},
    "measurement": {
        "profile": "quick",
        "warmup_runs": 5,
        "warmup_seconds": 0.1,
        "min_iterations": 100,
        "min_duration": 0.3,
        "repetitions": 2,
    },
}
GOAL_S = 1.0


def main() -> int:
    """Measure and print; exit 1 when the goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lab-overhead-"))
    os.environ["DEPLOYBENCH_HOME"] = str(home)

    from deploybench.client import Client
    from deploybench.runner import run_experiment
    from deploybench.server.embedded import EmbeddedLab
    from deploybench.spec import parse_experiment

    local: list[float] = []
    lab: list[float] = []
    with EmbeddedLab(home) as credentials, Client(credentials.url, credentials.admin_token) as c:
        c.wait(c.submit([QUICK]).campaign, progress=False)  # warm caches on both sides
        run_experiment(parse_experiment(QUICK))
        for _ in range(args.rounds):
            start = time.perf_counter()
            run_experiment(parse_experiment(QUICK))
            local.append(time.perf_counter() - start)
            start = time.perf_counter()
            jobs = c.wait(c.submit([QUICK]).campaign, progress=False, poll=0.05)
            c.run(jobs[0]["run_id"])
            lab.append(time.perf_counter() - start)
            if jobs[0]["state"] != "succeeded":
                print(f"lab run failed: {jobs[0]}")
                return 1
    overhead = statistics.median(lab) - statistics.median(local)
    print(f"{args.rounds} interleaved rounds of a quick experiment (digits-mlp, 2 repetitions)")
    print(
        f"  local (runner in this process): median {statistics.median(local):.2f} s  "
        f"[{', '.join(f'{v:.2f}' for v in local)}]"
    )
    print(
        f"  lab (submit -> result):         median {statistics.median(lab):.2f} s  "
        f"[{', '.join(f'{v:.2f}' for v in lab)}]"
    )
    verdict = "ok" if overhead <= GOAL_S else "MISSED"
    print(f"  lab overhead per run: {overhead:.2f} s (goal <= {GOAL_S:.1f} s) {verdict}")
    return 0 if overhead <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
