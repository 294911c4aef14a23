"""Host latency of cgen's generated C against ONNX Runtime on the same models (informative).

For each digits model, one process builds the deployables (cgen fp32 and INT8; ONNX Runtime
fp32 without and with graph optimization, and static INT8 on the same QDQ recipe), opens each
through its own session factory, and times single-sample calls in interleaved blocks (A, B,
C, ... then again), so the machine's drift spreads over every configuration alike. Both sides
pay a Python call per inference (ctypes for cgen, ``InferenceSession.run`` for ORT); the
printed median is per sample, batch 1, one thread.

There is no goal: the generated C is written for microcontrollers (no SIMD intrinsics, no
threads), so the point is to know how far it is from a tuned runtime on the same CPU.

    python benchmarks/cgen_vs_ort.py [--blocks 15] [--block-seconds 0.2] [--models digits-mlp]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.harness.worker import _import_factory
from deploybench.problems import resolve_problem
from deploybench.spec import Problem
from deploybench.toolchains.base import Session, SessionOptions
from deploybench.toolchains.cgen.toolchain import CgenToolchain
from deploybench.toolchains.onnxruntime import OnnxRuntimeToolchain

CONFIGS: list[tuple[str, Any, dict[str, Any]]] = [
    ("cgen fp32", CgenToolchain, {}),
    ("cgen int8", CgenToolchain, {"precision": "int8"}),
    ("ort fp32 (no opt)", OnnxRuntimeToolchain, {"graph_optimization": "disabled"}),
    ("ort fp32 (all)", OnnxRuntimeToolchain, {"graph_optimization": "all"}),
    ("ort static int8", OnnxRuntimeToolchain, {"quantization": "static-int8"}),
]


def _open(model: str, workdir: Path) -> tuple[dict[str, Session], list[Any]]:
    problem = resolve_problem(
        Problem.model_validate({"model": f"zoo:{model}", "dataset": "zoo:digits"})
    )
    sessions: dict[str, Session] = {}
    feeds: list[Any] = []
    inputs = problem.load_inputs(limit=64)
    for index, (label, cls, raw) in enumerate(CONFIGS):
        toolchain = cls()
        config = toolchain.parse_config(
            {"intra_op_threads": 1, **raw} if cls is OnnxRuntimeToolchain else raw
        )
        deployable = toolchain.build(problem, config, workdir / f"{model}-{index}")
        assert deployable.session_factory is not None
        session = _import_factory(deployable.session_factory)(deployable, SessionOptions(threads=1))
        sessions[label] = session
    name = problem.inputs[0].name
    for session in sessions.values():
        feeds.append([session.prepare({name: inputs[name][i : i + 1]}) for i in range(64)])
    return sessions, feeds


def _block(session: Session, feeds: list[Any], seconds: float) -> list[int]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    i = 0
    while clock() < end:
        feed = feeds[i % len(feeds)]
        start = clock()
        session.run(feed)
        samples.append(clock() - start)
        i += 1
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--block-seconds", type=float, default=0.2)
    parser.add_argument("--models", nargs="+", default=["digits-mlp", "digits-cnn"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cgen-vs-ort-") as scratch:
        for model in args.models:
            sessions, feeds = _open(model, Path(scratch))
            samples: dict[str, list[int]] = {label: [] for label in sessions}
            for _ in range(3):  # warm-up blocks, discarded
                for session, feed in zip(sessions.values(), feeds, strict=True):
                    _block(session, feed, args.block_seconds)
            for _ in range(args.blocks):
                for (label, session), feed in zip(sessions.items(), feeds, strict=True):
                    samples[label] += _block(session, feed, args.block_seconds)
            baseline = float(np.median(samples["ort fp32 (all)"]))
            print(f"\n{model}: median per sample (batch 1, 1 thread), {args.blocks} blocks each")
            print(f"  {'configuration':<20} {'median':>10} {'p90':>10} {'vs ort fp32 (all)':>18}")
            for label, values in samples.items():
                median = float(np.median(values))
                p90 = float(np.percentile(values, 90))
                print(
                    f"  {label:<20} {median / 1e3:>8.1f}µs {p90 / 1e3:>8.1f}µs "
                    f"{median / baseline:>17.2f}x"
                )
            for session in sessions.values():
                session.close()


if __name__ == "__main__":
    main()
