"""Peer agreement: deploybench's OpenVINO median latency vs OpenVINO's own ``benchmark_app``
on the same IR, precision, hint, threads, CPU and input shape, measured in this one run.

For each zoo model: one unscored deploybench run (it builds the deployable benchmark_app
needs, and warms the file cache), then ``B0 A1 B1 A2 ... An Bn``, so that every deploybench
run is bracketed by two benchmark_app runs:

- **A, deploybench**: ``run_experiment`` of the experiment below (toolchain openvino,
  ``precision: f32, hint: latency, threads: 1``, batch 1, pinned to one CPU, one repetition):
  build, reference run, one fresh worker process. It gives two series over the same calls:
  - *harness-timed* (``latency_ms``, deploybench's main figure): ``perf_counter_ns`` around
    each call to the session's ``run`` (one of 64 prepared feeds copied into the input
    buffer bound to the request once, ``InferRequest.infer()``, the outputs copied out);
  - *runtime-reported* (``runtime_latency_ms``): ``InferRequest.latency`` of that same call,
    read by the worker after the call's end timestamp.
- **B, benchmark_app**: the wheel's ``benchmark_app`` pinned to the same CPU with the run's
  own deployable: ``-m model.xml -load_config openvino_config.json`` (the compile properties
  the session uses: ``INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY,
  INFERENCE_NUM_THREADS 1``; benchmark_app refuses ``-nthreads`` next to ``-hint``), ``-api
  sync``, the IR's own shape (``-shape`` with ``?`` for the batch, as the session compiles it)
  and ``-data_shape`` batch 1, ``-inference_only true``, the problem's first dataset sample
  as input (``-i input:sample.npy``; by default benchmark_app fills inputs with
  uniform(0, 255) noise) and ``-ip f32`` (by default it makes a 3-channel NCHW input u8 and
  compiles a u8->f32 conversion into the model). Its median is taken from its "Median:" line
  (the JSON report rounds to 0.01 ms, too coarse here).

What is compared with what. The wheel's benchmark_app is the Python tool
(``openvino/tools/benchmark/benchmark.py``): with ``-api sync`` its loop is ``request.infer()``
then ``times.append(request.latency)``, and "Median" is the sorted list's element
``ceil(n/2) - 1``. So it reports ``InferRequest.latency``, the time OpenVINO measures *inside*
the C++ ``infer()`` with the GIL released, and excludes everything Python does around the call.
deploybench's runtime-reported series is that same quantity, read the same way: the
like-for-like comparison, and the judged one. The harness-timed series times the whole Python
call as an application pays it; its ratio is printed for information (see below).

The judged figure, per model: the median over rounds of ``A_i / sqrt(B_(i-1) * B_i)``
(deploybench's runtime-reported median of run i over the geometric mean of the two
benchmark_app medians around it), printed with its 95 % percentile-bootstrap interval; goal:
within +-3 %. The ratio of the two tools' medians over all rounds is printed too, and each
deploybench line gives the median and its 95 % CI over all rounds, computed as the runner does
(rounds as repetitions, clustered bootstrap). A context line (not judged) gives benchmark_app on
a static batch-1 model (``-shape [1,...]``), its fastest configuration.

Why bracketed rounds of 10 s. On the development VM (2 vCPUs, shared host) the latency of
one pinned process moves between levels that last 0.5-3 s: a 60 s trace of ``infer()`` on
digits-cnn (tensor set once, 2026-11-28) had 0.5 s medians from 21.7 us (a quarter of the
time, around 22 us) to 46.5 us. The spread of its window medians, as sd/mean: 0.21 for 0.5 s
windows, 0.17 for 1.5 s, 0.15 for 2 s, 0.135 for 5 s, 0.050 for 10 s. So long
windows, each paired with benchmark_app runs right before and after (the bracket cancels
drift that is linear over the round; the median over rounds drops rounds where one tool hit
a slow stretch). The two vCPUs do not share their levels (two benchmark_app runs at once on
CPU 0 and CPU 1 differed by a ratio of 0.95-1.37 over 8 tries), so running the tools side by
side on the two CPUs would not cancel the noise. With 1.5 s rounds (the earlier design: A then
B, paired ratios) the per-round ratios spread over 0.53-1.59 and the 95 % interval of the
judged ratio was about +-12 %.

Why the same input data. Input values move OpenVINO's inner latency: in one pinned process,
alternating 0.25 s chunks 30 times, digits-mlp ran 2.2-3.1 % slower (two probes) on
benchmark_app's uniform(0, 255) fill than on a digits sample; digits-cnn showed no difference.

What still differs in the runtime-reported comparison: deploybench writes new data into its
bound input buffer on every call (cycling 64 dataset samples) where ``-inference_only`` fills
the inputs once with one sample (a controlled probe found no cost in the writing itself: 9.3 us
against 8.9-9.8 us on digits-mlp); and the two tools run in different processes, at different
times.

How to read the harness-timed ratio. It times the whole Python call, which costs a fixed
20-40 us per inference beyond ``InferRequest.latency`` here (the GIL round trip of
``infer()``, 8-27 us even on tensors set once; the input copy; the output copies, since
the next call overwrites the request's buffers). It is deploybench's main figure because it is
what an application pays, and it approaches benchmark_app's figure only for models that run
for milliseconds: 2.2-2.6x on digits-mlp (10-20 us), 1.6-1.8x on digits-cnn, 1.1-1.2x on the
ResNet-18 (hundreds of us). The context section at the end of each model times these pieces
on one compiled model in one pinned process (deploybench's own ``session.run``, a bare
``infer(feed, share_inputs=True)``, ``infer()`` on tensors set once; each on the IR's
dynamic-batch shape, as deploybench compiles it, and on a static batch-1 reshape), with both
clocks, so the gap can be attributed.

History (2026-11-28, same VM). The first version compared the harness-timed median only and
failed by 5.3-5.5x on digits-mlp: ``InferRequest.infer(dict, share_inputs=True)``, the Python
wrapper, cost 30-70 us over the runtime's own latency. The session then prepared ``ov.Tensor``
objects before timing (2.7x), the runtime-reported series was added (the like-for-like
quantity), and a probe showed that ``set_tensor`` on every call cost 2-2.5 us of *inner*
latency (11.4-13.8 us against 9.8-10.9 us bound once), so the session now binds one buffer
per input once (again only when the batch shape changes) and copies each feed into it.
Runtime-reported ratios after that, in runs of 5-15 rounds of 1.5 s: digits-mlp 0.942-1.008,
digits-cnn 0.961-1.060, the ResNet-18 0.928-1.039: centred on 1, but no single run of that
design resolved +-3 %, which led to the bracketed 10 s design above. Its first full run (20
rounds of 10 s, benchmark_app still on its own random u8/noise inputs): digits-mlp 0.940
(95 % CI 0.865-0.988: FAIL, and the interval excludes 1), digits-cnn 0.983 (0.948-1.005) and
the ResNet-18 0.985 (0.966-1.004), PASS. The probe on input data followed, then ``-i`` and
``-ip f32``.

Result with this design, same inputs (``-i``, ``-ip f32``), defaults (9 rounds of 10 s),
2026-11-28 23:38-23:54: runtime-reported bracketed ratio digits-mlp 1.091 (95 % CI
0.836-1.200; benchmark_app's own 10 s medians ranged 11.5-18.9 us), digits-cnn 1.048
(0.935-1.149), ResNet-18 0.989 (0.798-1.044): FAIL on the two digits models, and every
interval contains 1. That is the state of the goal: over all runs of this day the judged
ratios scatter around 1 (0.940-1.091 on digits-mlp, 0.961-1.060 on digits-cnn, 0.928-1.039
on the ResNet-18) with no offset that repeats from run to run, but the 95 % interval of one
run on this VM is 5-20 % wide, wider than the +-3 % goal; a run passes or fails by the
machine's luck. Resolving +-3 % needs a quieter machine (a dedicated core without a busy
sibling) or many more rounds (the interval narrows as 1/sqrt(rounds): about 100 rounds of
10 s per model, close to an hour, at this noise).

    python benchmarks/peer_agreement.py [--rounds 9] [--seconds 10] [--cpu N] [--quick]
                                        [--models digits-mlp ...]

Defaults take about 5 minutes per model. ``--quick``: one short round, for the test suite;
figures printed, not judged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as scipy_stats

from deploybench.metrics.statistics import describe_samples
from deploybench.problems.resolve import resolve_problem
from deploybench.runner import run_experiment
from deploybench.runner.latency import harness_samples
from deploybench.spec import parse_experiment
from deploybench.toolchains.base import Deployable

# Zoo model -> its dataset. The ResNet-18 (quarter width, 3x32x32) is there because its own
# inference time (hundreds of us) dwarfs the Python call overhead that dominates the
# harness-timed figure of the two tiny digits models.
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


def dataset_inputs(model: str, directory: Path) -> str:
    """``-i`` for benchmark_app: the problem's first sample, one ``.npy`` per input.

    benchmark_app otherwise fills inputs with uniform(0, 255) noise, and the input data moves
    OpenVINO's inner latency: on digits-mlp a probe measured noise 2-3 % slower than a digits
    sample (paired chunks in one pinned process), about the size of the goal.
    """
    inputs = resolve_problem(experiment(model, 1.0, 0.1, 0).problem).load_inputs(limit=1)
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for name, array in inputs.items():
        path = directory / f"{name}.npy"
        np.save(path, np.ascontiguousarray(array))
        files.append(f"{name}:{path}")
    return ",".join(files)


def benchmark_app(
    deployable: Deployable, seconds: float, cpu: int, static: bool, inputs: str
) -> float:
    """benchmark_app's median latency in ms, pinned to ``cpu``, on the given ``-i`` inputs."""
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
        "-i",
        inputs,
        # The session feeds f32; without -ip, benchmark_app makes a 3-channel NCHW input u8
        # and compiles a u8->f32 conversion into the model (its image default).
        "-ip",
        "f32",
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


def paired_ci(ratios: np.ndarray) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median of the per-round ratios."""
    if ratios.size < 3:
        return float("nan"), float("nan")
    result = scipy_stats.bootstrap(
        (ratios,), np.median, confidence_level=0.95, method="percentile", random_state=0
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def positive(kind: type[int] | type[float]) -> Any:
    """An argparse type: a number of ``kind`` above zero, or a message naming what is allowed."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not above 0: give a positive number")
        return value

    return parse


def main() -> int:
    """Measure both models with both tools; exit 1 when a ratio is outside the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=positive(int), default=9, help="bracketed rounds per model"
    )
    parser.add_argument(
        "--seconds", type=positive(float), default=10.0, help="measured time per round"
    )
    parser.add_argument("--warmup", type=positive(float), default=0.5)
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
        f"{args.rounds} bracketed round(s) (B A B ... A B) of {args.seconds:g} s per tool and model"
        f"{' (quick: not judged)' if args.quick else ''}\n"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="peer-agreement-") as tmp:
        for model in args.models:
            # An unscored first run builds the deployable benchmark_app needs for B0 (and warms
            # the file cache); then B0, A1, B1, ..., An, Bn: every deploybench run is bracketed.
            inputs = dataset_inputs(model, Path(tmp) / model / "inputs")
            first = deploybench_round(model, 0.2, 0.1, args.cpu, Path(tmp) / model / "first")
            theirs = [benchmark_app(first.deployable, args.seconds, args.cpu, False, inputs)]
            rounds: list[Round] = []
            for round_ in range(args.rounds):
                workdir = Path(tmp) / model / f"round-{round_}"
                done = deploybench_round(model, args.seconds, args.warmup, args.cpu, workdir)
                rounds.append(done)
                theirs.append(benchmark_app(done.deployable, args.seconds, args.cpu, False, inputs))
            deployable = rounds[-1].deployable
            static = [
                benchmark_app(deployable, args.seconds, args.cpu, True, inputs) for _ in range(2)
            ]
            b = float(np.median(theirs))
            print(model)
            print(
                f"  benchmark_app median   {b * 1e3:9.2f} us   (IR shape, -inference_only; "
                f"{len(theirs)} runs, {min(theirs) * 1e3:.2f}-{max(theirs) * 1e3:.2f} us)"
            )
            # Each deploybench run is compared with the geometric mean of the benchmark_app runs
            # just before and just after it: on this VM medians shift by 10-50 % within
            # seconds, far more than the goal, and the bracket cancels any drift that is linear
            # over the round.
            bracket = [float(np.sqrt(x * y)) for x, y in itertools.pairwise(theirs)]
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
                paired = np.array([x / y for x, y in zip(ours, bracket, strict=True)])
                ratios[label] = float(np.median(paired))
                low, high = paired_ci(paired)
                print(
                    f"  deploybench {label:<17} median {a * 1e3:9.2f} us   (all rounds: "
                    f"{stats.median * 1e3:.2f} us, 95 % CI {ci[0] * 1e3:.2f}-{ci[1] * 1e3:.2f} us;"
                    f" {len(ours)} runs, {min(ours) * 1e3:.2f}-{max(ours) * 1e3:.2f} us)"
                )
                print(
                    f"      bracketed ratio {ratios[label]:.3f} (95 % CI {low:.3f}-{high:.3f}; "
                    f"rounds {paired.min():.3f}-{paired.max():.3f}; ratio of medians {a / b:.3f})"
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
            pieces = breakdown(deployable, min(args.seconds / 2, 2.0), args.cpu)
            for label, (wall, inner) in pieces.items():
                print(f"    {label:<42} wall {wall / 1e3:8.2f} us   inner {inner / 1e3:8.2f} us")
            print()
    print("FAIL" if failed else ("done (quick)" if args.quick else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
