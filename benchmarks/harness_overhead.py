"""Harness overhead: deploybench's reported median latency vs a bare ``InferenceSession.run``
loop on the same model file, with the same session options, threads and CPU pinning.

Both are measured in this one run, interleaved round by round (bare, harness, bare, ...) so
drift on a noisy machine hits both alike. Goal: ratio <= 1.05 on digits-mlp (tiny: the
per-call overhead is most visible) and <= 1.02 on digits-cnn.

    python benchmarks/harness_overhead.py [--rounds 3] [--seconds 2] [--cpu N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from deploybench.runner.preparation import prepare_experiment
from deploybench.spec import parse_experiment
from deploybench.targets.base import ExecutionRequest
from deploybench.targets.local import LocalCpuTarget
from deploybench.toolchains.base import Deployable

GOALS = {"digits-mlp": 1.05, "digits-cnn": 1.02}

# The bare loop: what a user would write by hand around the same model and options.
BARE_LOOP = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
model, data, seconds, warmup = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
so.intra_op_num_threads = 1
sess = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
x = np.load(data)["input"]
feeds = [{"input": x[i:i + 1]} for i in range(min(64, len(x)))]
clock = time.perf_counter_ns
end = clock() + int(warmup * 1e9)
i = 0
while clock() < end:
    sess.run(None, feeds[i % len(feeds)]); i += 1
samples = []
start = clock()
i = 0
while clock() - start < seconds * 1e9:
    t0 = clock(); sess.run(None, feeds[i % len(feeds)]); t1 = clock()
    samples.append(t1 - t0); i += 1
print(json.dumps({"median_ns": float(np.median(samples)), "n": len(samples)}))
"""


def bare_median(model: Path, data: Path, seconds: float, warmup: float, cpu: int) -> float:
    """Median ns per call of the bare loop in a fresh process pinned like the worker."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            "taskset",
            "-c",
            str(cpu),
            sys.executable,
            "-c",
            BARE_LOOP,
            str(model),
            str(data),
            str(seconds),
            str(warmup),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(json.loads(out.stdout)["median_ns"])


def harness_median(
    deployable: Deployable, data: Path, seconds: float, warmup: float, cpu: int, workdir: Path
) -> float:
    """Median ns per call reported by deploybench's worker for one repetition."""
    experiment = _experiment("x", seconds, warmup, cpu)
    raw = LocalCpuTarget().execute(
        ExecutionRequest(
            deployable=deployable,
            inputs_path=data,
            environment=experiment.environment,
            plan=experiment.measurement.resolved(),
            functional_samples=0,
            workdir=workdir,
        )
    )
    if raw.failure is not None:
        raise SystemExit(f"harness run failed: {raw.failure.message}")
    return float(np.median(np.load(raw.repetitions[0].latencies_path)))


def _experiment(model: str, seconds: float, warmup: float, cpu: int):  # type: ignore[no-untyped-def]
    return parse_experiment(
        {
            "name": "harness-overhead",
            "problem": {
                "model": f"zoo:{model}" if model != "x" else "zoo:digits-mlp",
                "dataset": "zoo:digits",
            },
            "toolchain": {"name": "onnxruntime", "config": {"graph_optimization": "all"}},
            "environment": {"threads": 1, "cpu_affinity": [cpu]},
            "measurement": {
                "profile": "quick",
                "warmup_runs": 1,
                "warmup_seconds": warmup,
                "min_iterations": 100,
                "min_duration": seconds,
                "max_duration": seconds * 10,
                "repetitions": 1,
            },
        }
    )


def main() -> int:
    """Measure both models and print ratios; exit 1 if a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    args = parser.parse_args()
    print(
        f"pinned to CPU {args.cpu}, 1 thread, {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s each\n"
    )
    print(
        f"{'model':<12} {'bare median':>12} {'deploybench':>12} {'ratio':>7} {'goal':>6}  verdict"
    )
    missed = False
    with tempfile.TemporaryDirectory(prefix="harness-overhead-") as tmp:
        for model, goal in GOALS.items():
            prepared = prepare_experiment(_experiment(model, args.seconds, args.warmup, args.cpu))
            deployable = prepared.toolchain.build(
                prepared.problem, prepared.config, Path(tmp) / model / "build"
            )
            data = prepared.problem.dataset_path
            bare: list[float] = []
            harness: list[float] = []
            for round_ in range(args.rounds):
                bare.append(
                    bare_median(deployable.entry_path, data, args.seconds, args.warmup, args.cpu)
                )
                harness.append(
                    harness_median(
                        deployable,
                        data,
                        args.seconds,
                        args.warmup,
                        args.cpu,
                        Path(tmp) / model / f"round-{round_}",
                    )
                )
            b, h = float(np.median(bare)), float(np.median(harness))
            ratio = h / b
            ok = ratio <= goal
            missed |= not ok
            print(
                f"{model:<12} {b / 1e3:>9.2f} µs {h / 1e3:>9.2f} µs {ratio:>7.3f} {goal:>6.2f}  "
                f"{'ok' if ok else 'MISSED'}"
            )
            print(
                f"{'':<12} rounds bare: {', '.join(f'{v / 1e3:.2f}' for v in bare)} µs; "
                f"harness: {', '.join(f'{v / 1e3:.2f}' for v in harness)} µs"
            )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
