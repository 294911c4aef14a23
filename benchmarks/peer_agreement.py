"""Peer agreement: deploybench's OpenVINO median latency vs OpenVINO's own ``benchmark_app``
on the same IR, precision, hint, threads, CPU and input shape, measured in this one run.

For each zoo model and each round, alternating the two tools (ABAB):

- **A, deploybench**: ``run_experiment`` of the experiment below (toolchain openvino,
  ``precision: f32, hint: latency, threads: 1``, batch 1, pinned to one CPU, one repetition):
  build, reference run, one fresh worker process. It gives two series over the same calls:
  - *harness-timed* (``latency_ms``, deploybench's main figure): ``perf_counter_ns`` around
    each call to the session's ``run`` (one of 64 prepared feeds copied into the input
    buffer bound to the request, ``InferRequest.infer()``, the outputs copied out);
  - *runtime-reported* (``runtime_latency_ms``): ``InferRequest.latency`` of that same call,
    read by the worker after the call's end timestamp.
- **B, benchmark_app**: the wheel's ``benchmark_app`` pinned to the same CPU with the run's
  own deployable: ``-m model.xml -load_config openvino_config.json`` (the compile properties
  the session uses: ``INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY,
  INFERENCE_NUM_THREADS 1``; benchmark_app refuses ``-nthreads`` next to ``-hint``), ``-api
  sync``, the IR's own shape (``-shape`` with ``?`` for the batch, as the session compiles it)
  and ``-data_shape`` batch 1, ``-inference_only true``. Its median is taken from its
  "Median:" line (the JSON report rounds to 0.01 ms, too coarse here).

What is compared with what. The wheel's benchmark_app is the Python tool
(``openvino/tools/benchmark/benchmark.py``): with ``-api sync`` its loop is ``request.infer()``
then ``times.append(request.latency)``, and "Median" is the sorted list's element
``ceil(n/2) - 1``. So it reports ``InferRequest.latency``, the time OpenVINO measures *inside*
the C++ ``infer()`` with the GIL released, and excludes everything Python does around the call.
deploybench's runtime-reported series is that same quantity, read the same way: the
like-for-like comparison, and the judged one. The harness-timed series times the whole Python
call as an application pays it; its ratio is printed for information.

The judged figure is the median over rounds of the paired ratio (deploybench runtime-reported
round median / benchmark_app median of the same round); goal: within +-3 %. The harness-timed
paired ratio is printed beside it. (Pairing: on this VM round medians drift by 10-50 % between
rounds, far more than the goal, and pairing the two tools within a round cancels most of that
drift; the ratio of the two medians over rounds is printed too.) Each deploybench line also
gives the median and its 95 % CI over all rounds, computed as the runner does (rounds as
repetitions, clustered bootstrap). A context line (not judged) gives benchmark_app on a static
batch-1 model (``-shape [1,...]``), its fastest configuration.

What still differs in the runtime-reported comparison: deploybench writes new data into its
bound input buffer on every call (cycling 64 feeds) where ``-inference_only`` fills the inputs
once; and the two tools run in different processes, so their medians move with this VM's
drift (the context lines "deploybench session.run" and "infer() on tensors set once", column
"inner", compare the two inside one process).

How to read the harness-timed ratio. deploybench times the whole Python call:
``set_tensor`` of the prepared ``ov.Tensor``, the GIL round trip, ``infer()``, and the output
copies (the next call overwrites the request's buffers).

A final context section times these pieces on one compiled model in one pinned process
(deploybench's own ``session.run``, a bare ``infer(feed, share_inputs=True)``, ``infer()`` on
tensors set once; each on the IR's dynamic-batch shape, as deploybench compiles it, and on a
static batch-1 reshape), with both clocks, so the gap can be attributed.

Measured on the development VM (AMD EPYC, AVX2, 2 vCPUs, 2026-11-28; two full runs of 5
rounds of 2 s): digits-mlp deploybench 60-101 us vs benchmark_app 11-18 us (ratio 5.3-5.5),
digits-cnn 114-125 us vs 32-45 us (ratio 2.8-3.6): FAIL, far outside +-3 %, and not noise
(every paired round ratio is above 1.7). Where it goes, per call:

- ``InferRequest.infer(dict, share_inputs=True)``, the Python wrapper (input dispatch, Tensor
  wrapping, set_tensor, OVDict of copied outputs), costs 30-70 us of wall time over the
  runtime's own ``latency`` on both models: the bulk of the gap.
- ``infer()`` alone on tensors set once still costs 6-20 us over ``latency`` (GIL round trip,
  result dict): a floor for any Python harness timing wall clock around the call, larger than
  digits-mlp's whole inference (about 6-9 us static).
- The dynamic batch dimension (deploybench compiles the IR as converted, ``[?,...]``; it never
  reshapes to the batch it measures) adds about 5-15 us of inner latency and more wall time
  against a static batch-1 model.
- Setting a new input tensor each call (deploybench cycles 64 feeds; benchmark_app's
  ``-inference_only`` fills its inputs once) raises the inner latency as well.
- deploybench's harness itself (``perf_counter_ns`` around the call, GC off) adds nothing
  measurable beyond the session's ``run``; the outputs' lookup by port adds about 5 us.

So a FAIL here is a finding about what deploybench's OpenVINO session times, not about the
harness's clock. The ratio gets closer to 1 as the model's own time grows.

After those runs the session stopped calling ``infer(dict)``: ``prepare`` builds the
``ov.Tensor`` objects before timing and ``run`` does ``set_tensor`` + ``infer()`` + output copies.
digits-mlp went from about 60 us to 32 us against benchmark_app's 12 us (ratio 2.7, quick run,
same day): still a FAIL. What is left is ``set_tensor`` per call, the dynamic batch and the
Python floor above.

Run of 2026-11-28 (5 rounds of 2 s, judged on the paired ratios), with the quarter-width
ResNet-18 (zoo:resnet18-wd4-digits32, 3x32x32) added because its own inference time is
hundreds of microseconds: digits-mlp 33 us vs 12 us (ratio 2.78), digits-cnn 51 us vs 30 us
(1.85), ResNet-18 230 us vs 189 us (1.22; paired round ratios 1.14-1.46): FAIL on all three.
The gap is about 40 us per call on the ResNet-18 as on the small models: the Python call
(``infer()`` wall time exceeds ``InferRequest.latency`` by 15 us even on tensors set once), the
output copy, and binding a new input tensor per call. It is a fixed cost per inference, so the
ratio approaches 1 only for models that run for milliseconds; a tool that times from Python
cannot agree with ``benchmark_app`` within 3 % below that. Two measures tried the same day did
not change the figures beyond this VM's noise: ``start_async()`` + ``wait()`` instead of
``infer()`` (slower on digits-mlp: 30 us vs 16 us wall), and copying each feed into the
request's own input buffer instead of ``set_tensor``.

Runtime-reported series added (2026-11-28, same VM, two runs of 5 rounds of 1.5 s while other
jobs kept both vCPUs busy, load average about 3): the runtime-reported paired ratio is
1.043 / 1.153 on digits-mlp, 1.048 / 1.031 on digits-cnn and 1.061 / 1.032 on the ResNet-18,
against harness-timed ratios of 2.66 / 2.90, 1.90 / 1.94 and 1.29 / 1.23. The Python call
overhead is gone from the comparison; what is left is within 3-15 %, FAIL by the letter, but
the paired round ratios themselves spread over 0.6-1.4 on that loaded machine, so the goal
cannot be resolved there: rerun on an idle machine. A residual above 1 is expected from the
per-call input binding described above.

Rerun on a quieter machine (same VM, load average 1.5-2, 2026-11-28 20:04-20:12; 5 rounds of
1.5 s): runtime-reported ratio 0.92 on digits-cnn and 0.98 (PASS) on the ResNet-18, 1.19 and
1.17-1.20 on digits-mlp and digits-cnn in two later runs; benchmark_app's own median moved
from 15.4 to 19.3 us on digits-mlp between runs. The in-process context lines locate the
residual: on the dynamic-batch IR, ``infer()`` on tensors set once reports 12.7 us inner
latency on digits-mlp against 18.2 us for deploybench's session (which gives the runtime a
new input on every call); copying each feed into the request's own input tensor instead of
``set_tensor`` left that unchanged (18.2 us), so it is the new data per call, not the
binding, that OpenVINO's inner time sees. The goal is met on the model that runs for hundreds
of microseconds, not on the two that run for 10-40 us.

That conclusion was wrong, and a controlled probe (one pinned process, digits-mlp, 18,000
calls per variant, inner latency) showed why: new data written into a tensor bound once costs
nothing (9.3 us against 8.9-9.8 us for no change), while ``set_tensor`` on every call costs
1.6 us with the same tensor and 2-2.5 us cycling 64 tensors (11.4-13.8 us with the output
copies, against 9.8-10.9 us bound once). The earlier copy attempt had gone through the
request's own tensor (``get_input_tensor().data``), which did not avoid the rebinding. The
session now binds one buffer per input once (again only when the batch shape changes) and
copies each feed into it with ``np.copyto``. Runs on the quiet VM (load 0.8-1.9,
2026-11-28 20:32-20:40, 5 or 7 rounds of 1.5 s), runtime-reported paired ratio:
digits-mlp 0.976 and 0.988, digits-cnn 1.002 and 0.995 (PASS, every run); the ResNet-18
0.928 (FAIL; its paired round ratios spread over 0.71-1.20, ratio of the overall medians
1.023) and 0.991 (PASS) in a 7-round run. The harness-timed ratios fell with it: 2.17-2.24 on
digits-mlp, 1.65-1.67 on digits-cnn, 1.09-1.16 on the ResNet-18.

    python benchmarks/peer_agreement.py [--rounds 5] [--seconds 2] [--cpu N] [--quick]

``--quick``: one round of short durations, for the test suite; figures printed, not judged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deploybench.metrics.statistics import describe_samples
from deploybench.runner import run_experiment
from deploybench.runner.latency import harness_samples
from deploybench.spec import parse_experiment
from deploybench.toolchains.base import Deployable

# Zoo model -> its dataset. The ResNet-18 (quarter width, 3x32x32) is there because its own
# inference time (hundreds of us) dwarfs the Python call overhead that dominates the two tiny
# digits models: it is where the two tools can agree within the goal.
DATASETS = {
    "digits-mlp": "digits",
    "digits-cnn": "digits",
    "resnet18-wd4-digits32": "digits32",
}
MODELS = tuple(DATASETS)
TOLERANCE = 0.03
BENCHMARK_APP = Path(sys.executable).with_name("benchmark_app")
MEDIAN_LINE = re.compile(r"Median:\s+([0-9.]+)\s+(us|ms)")

# Time the pieces of one Python inference on the same compiled model, in one pinned process.
BREAKDOWN = r"""
import gc, json, sys, time
import numpy as np
import openvino as ov
xml, config, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
shape = json.loads(sys.argv[4])
props = json.load(open(config))["CPU"]
core = ov.Core()
clock = time.perf_counter_ns
gc.disable()  # as the worker does while timing
out = {}
def timed(label, request, fn, feeds):
    for _ in range(2):  # the first pass warms up
        wall, inner = [], []
        end = clock() + seconds * 1e9
        i = 0
        while clock() < end:
            t0 = clock(); fn(request, feeds[i % len(feeds)]); t1 = clock()
            wall.append(t1 - t0); inner.append(request.latency * 1e6); i += 1
    out[label] = [float(np.median(wall)), float(np.median(inner))]
rng = np.random.default_rng(0)
feeds = [{"input": rng.random(shape, dtype=np.float32)} for _ in range(64)]
if len(sys.argv) > 5:  # deploybench's own session on the deployable, as the worker calls it
    from pathlib import Path
    from deploybench.toolchains.base import Deployable, SessionOptions
    from deploybench.toolchains.openvino.session import open_session
    session = open_session(Deployable.read(Path(sys.argv[5])), SessionOptions(threads=1))
    timed("dynamic: deploybench session.run(feed)", session._request,
          lambda r, f: session.run(f), [session.prepare(f) for f in feeds])
    session.close()
for kind in ("dynamic", "static"):
    model = core.read_model(xml)
    if kind == "static":
        model.reshape({model.inputs[0]: shape})
    request = core.compile_model(model, "CPU", props).create_infer_request()
    timed(f"{kind}: infer(feed, share_inputs=True)", request,
          lambda r, f: r.infer(f, share_inputs=True), feeds)
    request.set_input_tensor(ov.Tensor(feeds[0]["input"]))
    timed(f"{kind}: infer() on tensors set once", request, lambda r, f: r.infer(), feeds)
print(json.dumps(out))
"""


def experiment(model: str, seconds: float, warmup: float, cpu: int) -> Any:
    """The deploybench experiment compared with benchmark_app."""
    return parse_experiment(
        {
            "name": "peer-agreement",
            "problem": {"model": f"zoo:{model}", "dataset": f"zoo:{DATASETS[model]}"},
            "toolchain": {
                "name": "openvino",
                "config": {"precision": "f32", "hint": "latency", "threads": 1},
            },
            "environment": {"threads": 1, "cpu_affinity": [cpu]},
            "measurement": {
                "profile": "quick",
                "warmup_runs": 10,
                "warmup_seconds": warmup,
                "min_iterations": 100,
                "min_duration": seconds,
                "max_duration": seconds * 10,
                "repetitions": 1,
                "batch_size": 1,
                "accuracy_samples": 64,
            },
        }
    )


class Round(NamedTuple):
    """One deploybench run: both of its series (ms) and the deployable it measured."""

    median: float  # harness-timed: perf_counter_ns around the session's run()
    samples: np.ndarray
    runtime_median: float  # runtime-reported: InferRequest.latency of the same calls
    runtime_samples: np.ndarray
    deployable: Deployable


def deploybench_round(model: str, seconds: float, warmup: float, cpu: int, workdir: Path) -> Round:
    """One run of the experiment with both of its latency series."""
    outcome = run_experiment(experiment(model, seconds, warmup, cpu), workdir=workdir)
    record = outcome.record
    if record.status != "succeeded":
        raise SystemExit(f"{model}: deploybench run failed: {record.error}")
    if "runtime_latency_ms" not in record.metrics:
        raise SystemExit(f"{model}: the run recorded no runtime-reported latency")
    with np.load(workdir / "raw_latencies.npz") as raw:
        series = {k: raw[k].astype(np.float64) / 1e6 for k in raw.files}
    harness = harness_samples(series)
    runtime = [v for k, v in series.items() if k not in harness]
    return Round(
        float(record.metrics["latency_ms"]["median"]),
        np.concatenate(list(harness.values())),
        float(record.metrics["runtime_latency_ms"]["median"]),
        np.concatenate(runtime),
        Deployable.read(workdir / "build"),
    )


def shapes(deployable: Deployable, batch: int) -> tuple[str, str, list[int]]:
    """-shape as the IR has it (symbolic dims as ?), -data_shape and the static shape."""
    model_shape, data_shape, static = [], [], []
    for spec in deployable.inputs:
        dims = [d if isinstance(d, int) else None for d in spec.shape]
        concrete = [batch if d is None else d for d in dims]
        model_shape.append(f"{spec.name}[{','.join('?' if d is None else str(d) for d in dims)}]")
        data_shape.append(f"{spec.name}[{','.join(map(str, concrete))}]")
        static = concrete
    return ",".join(model_shape), ",".join(data_shape), static


def benchmark_app(deployable: Deployable, seconds: float, cpu: int, static: bool) -> float:
    """benchmark_app's median latency in ms, pinned to ``cpu``."""
    model_shape, data_shape, _ = shapes(deployable, 1)
    root = deployable.root
    assert root is not None
    command = [
        "taskset",
        "-c",
        str(cpu),
        str(BENCHMARK_APP),
        "-m",
        str(deployable.entry_path),
        "-d",
        "CPU",
        "-load_config",
        str(root / "openvino_config.json"),
        "-api",
        "sync",
    ]
    # -t takes whole seconds only: below one second (--quick), a fixed iteration count instead.
    command += ["-t", str(round(seconds))] if seconds >= 1 else ["-niter", "300"]
    if static:
        command += ["-shape", data_shape]
    else:
        command += ["-shape", model_shape, "-data_shape", data_shape, "-inference_only", "true"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = MEDIAN_LINE.search(out.stdout + out.stderr)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"benchmark_app failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    value = float(found.group(1))
    return value / 1e3 if found.group(2) == "us" else value


def breakdown(deployable: Deployable, seconds: float, cpu: int) -> dict[str, list[float]]:
    """Wall and InferRequest.latency medians (ns) of Python inference variants."""
    _, _, static = shapes(deployable, 1)
    root = deployable.root
    assert root is not None
    out = subprocess.run(
        [
            "taskset",
            "-c",
            str(cpu),
            sys.executable,
            "-c",
            BREAKDOWN,
            str(deployable.entry_path),
            str(root / "openvino_config.json"),
            str(seconds),
            json.dumps(static),
            str(root),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, list[float]] = json.loads(out.stdout)
    return result


def main() -> int:
    """Measure both models with both tools; exit 1 when a ratio is outside the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="ABAB rounds per model")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured time per round")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--quick", action="store_true", help="1 short round; not judged")
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, default=list(MODELS), help="zoo models to compare"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 0.3, 0.1
    if not BENCHMARK_APP.exists():
        print(f"benchmark_app not found next to {sys.executable}: pip install openvino")
        return 1
    print(
        f"pinned to CPU {args.cpu}; openvino f32, hint latency, 1 thread, batch 1; "
        f"{args.rounds} ABAB round(s) of {args.seconds:g} s per tool and model"
        f"{' (quick: not judged)' if args.quick else ''}\n"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="peer-agreement-") as tmp:
        for model in args.models:
            rounds: list[Round] = []
            theirs: list[float] = []
            static: list[float] = []
            for round_ in range(args.rounds):
                workdir = Path(tmp) / model / f"round-{round_}"
                done = deploybench_round(model, args.seconds, args.warmup, args.cpu, workdir)
                rounds.append(done)
                theirs.append(benchmark_app(done.deployable, args.seconds, args.cpu, False))
                static.append(benchmark_app(done.deployable, args.seconds, args.cpu, True))
            deployable = rounds[-1].deployable
            b = float(np.median(theirs))
            print(model)
            print(f"  benchmark_app median   {b * 1e3:9.2f} us   (IR shape, -inference_only)")
            ratios: dict[str, float] = {}
            series = {
                "runtime-reported": [(r.runtime_median, r.runtime_samples) for r in rounds],
                "harness-timed": [(r.median, r.samples) for r in rounds],
            }
            for label, pairs in series.items():
                ours = [median for median, _ in pairs]
                stats = describe_samples([g for _, g in pairs], confidence=0.95, seed=0)
                ci = stats.ci.median or (float("nan"), float("nan"))
                a = float(np.median(ours))
                # The median of the paired (same-round) ratios: each round runs the two tools
                # back to back, so their ratio cancels the machine's slow drift, which moves
                # round medians here by far more than the 3 % goal.
                paired = sorted(x / y for x, y in zip(ours, theirs, strict=True))
                ratios[label] = float(np.median(paired))
                print(
                    f"  deploybench {label:<17} median {a * 1e3:9.2f} us   (all rounds: "
                    f"{stats.median * 1e3:.2f} us, 95 % CI {ci[0] * 1e3:.2f}-{ci[1] * 1e3:.2f} us;"
                    f" paired ratios {paired[0]:.3f}-{paired[-1]:.3f}, ratio of medians "
                    f"{a / b:.3f})"
                )
            judged = ratios["runtime-reported"]
            ok = abs(judged - 1.0) <= TOLERANCE
            verdict = "not judged" if args.quick else ("PASS" if ok else "FAIL")
            failed |= not ok and not args.quick
            print(
                f"  ratio to benchmark_app: runtime-reported {judged:.3f} (judged, goal "
                f"{1 - TOLERANCE:.2f}-{1 + TOLERANCE:.2f}), harness-timed "
                f"{ratios['harness-timed']:.3f} (informative)  {verdict}"
            )
            s = float(np.median(static))
            a = float(np.median([r.median for r in rounds]))
            a_rt = float(np.median([r.runtime_median for r in rounds]))
            print(
                f"  context: benchmark_app on a static batch-1 model {s * 1e3:.2f} us "
                f"(deploybench / that: runtime-reported {a_rt / s:.3f}, harness-timed {a / s:.3f})"
            )
            print(
                "  context: one pinned Python process, same IR and properties "
                "(wall = perf_counter_ns around the call; inner = InferRequest.latency)"
            )
            pieces = breakdown(deployable, args.seconds / 2, args.cpu)
            for label, (wall, inner) in pieces.items():
                print(f"    {label:<42} wall {wall / 1e3:8.2f} us   inner {inner / 1e3:8.2f} us")
            print()
    print("FAIL" if failed else ("done (quick)" if args.quick else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
