"""Peer agreement: deploybench's OpenVINO median latency vs OpenVINO's own ``benchmark_app``
on the same IR, precision, hint, threads, CPU and input, measured side by side in one run.

For each case, a zoo model at a batch size (by default digits-mlp, digits-cnn and the
ResNet-18 at batch 1, and the ResNet-18 at batch 4), ``--rounds`` paired rounds. In each round:

- **A, deploybench**: ``run_experiment`` of the experiment below (toolchain openvino,
  ``precision: f32, hint: latency, threads: 1``, the case's batch, pinned to one CPU, one
  repetition): build, reference run, functional pass, one fresh measurement worker. It gives
  two series over the same calls:
  - *runtime-reported* (``runtime_latency_ms``): ``InferRequest.latency`` of each call, read by
    the worker after the call's end timestamp;
  - *harness-timed* (``latency_ms``, deploybench's main figure): ``perf_counter_ns`` around
    each call to the session's ``run`` (one of 64 prepared feeds copied into the input buffer
    bound to the request once, ``InferRequest.infer()``, the outputs copied out).
- **B, benchmark_app**: the wheel's ``benchmark_app``, pinned to the same CPU, on the round's
  own deployable: ``-m model.xml -load_config openvino_config.json`` (the compile properties
  the session uses: ``INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY,
  INFERENCE_NUM_THREADS 1``; benchmark_app refuses ``-nthreads`` next to ``-hint``), ``-api
  sync``, the IR's own shape (``-shape`` with ``?`` for the batch, as the session compiles it)
  and ``-data_shape`` at the case's batch, ``-inference_only true``, the problem's first
  samples as input (``-i input:samples.npy``; by default benchmark_app fills inputs with
  uniform(0, 255) noise) and ``-ip f32`` (by default it makes a 3-channel NCHW input u8 and
  compiles a u8->f32 conversion into the model). Its median comes from its "Median:" line (the JSON
  report rounds to 0.01 ms, too coarse here). That line is in 0.01 us steps while
  benchmark_app's average is under 1 ms, and in 0.01 ms steps above: with the turns below, the
  calls cut by a stop raise the average of the batch-4 ResNet-18 (about 0.7 ms a call) past
  1 ms, so its rounds are read to 10 us, an unbiased rounding of at most 0.7 % per round.
- **Taking turns.** B is started beside A's measurement worker, and the two run one at a time
  on the pinned CPU in turns of 20 ms (``SIGSTOP``/``SIGCONT`` of each process group, so the
  runtime's threads stop too): both measure the same stretch of machine time. To line the
  windows up, the worker is held (stopped) as soon as its log says it has loaded the model and
  is warming up; benchmark_app starts alone; both go when benchmark_app prints "Measuring
  performance". Both windows are wall-clock, ``--seconds`` long. A call cut by a stop is one
  outlier per turn, which a median ignores.

What is compared with what. The wheel's benchmark_app is the Python tool
(``openvino/tools/benchmark/benchmark.py``): with ``-api sync`` its loop is ``request.infer()``
then ``times.append(request.latency)``, and "Median" is the sorted list's element
``ceil(n/2) - 1``. So it reports ``InferRequest.latency``, the time OpenVINO measures *inside*
the C++ ``infer()`` with the GIL released, and excludes everything Python does around the call.
deploybench's runtime-reported series is that same quantity, read the same way: the
like-for-like comparison, and the one judged (on the cases of "Which cases are judged"). The
harness-timed series times the whole Python call as an application pays it; its ratio is
printed for information (see below).

The figure, per case: the median over rounds of ``A_i / B_i`` (deploybench's
runtime-reported median over the median of the benchmark_app run that took turns with it),
with its 95 % percentile-bootstrap interval; goal: within +-3 %, judged on the cases where the
caller does not set OpenVINO's time (see "Which cases are judged"). Each deploybench line also
gives the median and its 95 % CI over all rounds, computed as the runner does (rounds as
repetitions, clustered bootstrap). The *method check* line runs ``--null-rounds`` rounds of
benchmark_app against itself, taking turns the same way: the spread that the method leaves
when both sides are the same program. Context lines (not judged): benchmark_app alone on the
CPU (no turns) on the same IR and on a static-batch model, and the *callers* probe (see
"What still differs").

Why turns. On the development VM (2 vCPUs, shared host) the latency of one pinned process
moves between levels that last 0.5-3 s: a 60 s trace of ``infer()`` on digits-cnn had 0.5 s
medians from 21.7 to 46.5 us; the spread of window medians (sd/mean) was 0.21 for 0.5 s
windows, 0.17 for 1.5 s, 0.135 for 5 s, 0.05 for 10 s. Runs one after the other therefore
compare different machine states, and the earlier designs of this benchmark could not resolve
+-3 % (2026-11-28): rounds of A then B, 1.5 s each, had per-round ratios of 0.53-1.59 (95 %
interval of the judged ratio about +-12 %); rounds of 10 s with each A bracketed by two B runs
(``B0 A1 B1 ... An Bn``, median of ``A_i / sqrt(B_(i-1) B_i)``) still left intervals 5-20 %
wide, with judged ratios from 0.940 to 1.091 on digits-mlp. The two vCPUs do not share their
levels (two benchmark_app runs at once, one on each CPU, differed by 0.95-1.37), so running
the tools side by side on two CPUs does not help. On one CPU the levels are shared: two
identical ``infer()`` loops taking turns (2026-11-29) had 1 s medians that moved together
(correlation 0.76-0.92 with 100 ms turns). The ratio of their whole medians was 0.924-1.000
over 3 tries with 100 ms turns and 0.978-1.008 over 6 with 20 ms turns; benchmark_app against
itself with 100 ms turns gave 0.946-1.089 over 6. With no turns at all (both runnable, the
kernel's own time slicing) the two loops gave 0.958-1.038 over 6 tries although their 1 s
medians correlated at 0.92-1.00: part of the difference stays with a process for its lifetime
(presumably where its buffers landed in memory), and only more rounds average it out. Turns
raise both tools' medians above their figure alone on the CPU (the other process evicts the
caches every 20 ms; the context line shows the size), equally for both, so the ratio is what
to read.

Why the same input data. Input values can move OpenVINO's inner latency: one probe in a pinned
process (alternating 0.25 s chunks 30 times) had digits-mlp 2.2-3.1 % slower on benchmark_app's
uniform(0, 255) fill than on a digits sample; a later probe saw no difference (0.999), nor
between one sample and deploybench's cycling of 64. Giving benchmark_app the problem's own
sample removes the question.

What still differs: the caller. On a model this small OpenVINO's own time per call depends on
the caller by more than the goal, in two ways that pull in opposite directions. Probes on
digits-mlp (2026-11-29; one pinned process, alternating 0.1 s chunks 30-40 times, paired):
- *Input binding.* benchmark_app fills the request's own input tensor once, after setting its
  shape; deploybench binds a buffer of its own once. On the IR's dynamic batch the request's
  own tensor makes every call longer: a bound buffer ran at 0.82 of it on digits-mlp (0.74
  with an OpenVINO-allocated ``ov.Tensor``), 0.90 on digits-cnn and 0.99 on the ResNet-18,
  about 3-4 us per call.
- *Time between calls.* The longer the caller takes between two calls, the longer the next
  one: a busy-wait gap touching no memory, of 2, 5, 10 and 20 us, made it 1, 6, 6 and 9 %
  longer. Inference runs on the calling thread (one thread did all the CPU work), so this is
  no hand-off to a parked thread; presumably the predictor and cache state the caller's code
  leaves behind. deploybench's worker spends about 20 us between calls (the next feed copied
  in, the outputs copied out, its clock and the runtime read), benchmark_app's loop a few:
  copying the outputs out made the next call 6-11 % longer, the input copy 4 %, both 13 %.
Across processes taking turns: deploybench's pattern against a bare ``infer()`` loop on a
bound buffer 1.149 (1.013-1.185, 6 tries), the bare loop against benchmark_app 0.80
(0.77-0.88, 6 tries); 0.82 x 1.15 is about 0.94, the low end of digits-mlp's ratios. The
compiled graphs are the same in both tools (runtime graph ``brgemm_avx2_f32`` then
``gemm_mlas_f32``; same properties, CPU pinning included), and benchmark_app's ``-shape``
reshape and ``-ip`` pre-processing change nothing (0.973, 0.993). Compiling a static batch
would not make the callers agree either: on a static batch-1 digits-mlp (7.3 us) deploybench's
pattern ran at 1.10-1.13 of benchmark_app's loop in one process (3 probes), and at 1.06-1.19
even with both of its copies removed. The *callers* context lines measure both effects
for each case in every run: benchmark_app's loop, deploybench's ``session.run`` timed as the
worker times it, and a bare ``infer()`` on a bound buffer, in one pinned process; the inner
ratio of ``session.run`` is the in-process counterpart of the paired ratio.

Which cases are judged. Every case is judged against +-3 % except digits-mlp and digits-cnn at
batch 1 (``CALLER_BOUND_CASES``), and those are excused only when the run itself confirms that
their caller spread is above the goal; the run fails when a judged case is outside the goal or
when no case was judged. An excused case is printed as *caller-bound*: its ratio is shown, not
judged. So the goal rests on the ResNet-18, at batch 1 and 4; this is a decision of ours
(2026-11-29), as the issue asks for +-3 % without naming the models.

Why. The *caller spread* is how far OpenVINO's own time per call moves between two plain
callers of the same IR that owe nothing to deploybench: benchmark_app's loop against a bare
``infer()`` on a bound buffer (``|1 - inner ratio|`` from the callers probe, measured alone on
the CPU). Where it is above 3 %, two different callers (deploybench and benchmark_app are two)
can land on either side of the goal whatever their measurement does: the goal cannot tell a
faithful tool from a biased one there. deploybench's own caller is left out of the spread on
purpose: with it, the rule would excuse exactly the cases where deploybench disagrees. The
spread captures the input-binding effect only (both loops call back to back); the effect of the
time between calls comes on top, so the spread understates how much the caller matters and
errs towards judging. digits-cnn agrees within the goal in every run so far (0.983-1.009), but
as two caller effects of about 9 % cancelling out (binding one way, deploybench's work between
calls the other), not as evidence; digits-mlp, where they do not cancel, reads 2-6 % low.

The evidence, spreads measured in one pinned process (bare ``infer()`` against benchmark_app's
loop, inner ratio, 20 paired 0.1 s chunks, 2026-11-29): digits-mlp 0.857 at batch 1, 0.856 at
16, 0.881 at 64 (its call stays at 15-35 us); digits-cnn 0.885 at batch 1, 0.949 at 8, 0.963
at 16, 0.966 at 32; the ResNet-18 0.983 at batch 1 and 0.988 at batch 4. In the benchmark's
five runs with the callers probe: digits-mlp 0.833-0.889 and digits-cnn 0.894-0.920 at batch
1, the ResNet-18 0.960-0.992 at batch 1 and 0.968-0.992 at batch 4 (three runs). The digits
models at batch 1 are 8-17 % off in every measurement. The ResNet-18 is 0.8-4.0 % off, and
digits-cnn at batch 8-32 3.4-5.1 %: there a threshold alone would judge a case in one run and
excuse it in the next (a first version did, excusing the batch-4 ResNet-18 at 3.2 % in one run),
which is why only a fixed list of cases can be excused, and why the ResNet-18 is judged whatever
its spread.

How to read the harness-timed ratio. It times the whole Python call, which costs a fixed
20-40 us per inference beyond ``InferRequest.latency`` here (the GIL round trip of
``infer()``, 8-27 us even on tensors set once; the input copy; the output copies, since the next
call overwrites the request's buffers). It is deploybench's main figure because it is what an
application pays, and it approaches benchmark_app's figure only for models that run for
milliseconds: about 2.3x on digits-mlp (10-20 us), 1.7x on digits-cnn, 1.15x on the ResNet-18
(hundreds of us).

Results with the judging rule above (2026-11-29, defaults; runs 1-3 at 03:34-03:51,
03:53-04:09 and 04:10-04:27; runtime-reported paired ratio and its 95 % CI; cb: caller-bound
in every run, printed, not judged):

| run | digits-mlp (cb)     | digits-cnn (cb)     | ResNet-18           | ResNet-18 @4        |
|-----|---------------------|---------------------|---------------------|---------------------|
| 1*  | 0.967 (0.953-0.991) | 0.992 (0.979-1.006) | 1.009 (1.004-1.014) | 1.007 (1.000-1.014) |
| 2   | 0.978 (0.966-0.999) | 1.005 (0.998-1.020) | 1.018 (1.013-1.022) | 1.001 (0.996-1.010) |
| 3   | 0.982 (0.966-0.996) | 1.007 (0.991-1.023) | 1.015 (1.012-1.024) | 1.002 (0.995-1.008) |

Every run passed (exit 0); each took 17 minutes. Caller spreads: digits-mlp 14.9-16.7 %,
digits-cnn 9.0-10.6 %, the ResNet-18 0.8-4.0 % at batch 1 and 0.8-3.2 % at batch 4. Method
checks (benchmark_app against itself): medians 0.973-1.012. (*) run with the first version of
the rule (the spread alone decided), which excused the batch-4 ResNet-18 at 3.2 %; the table
gives the verdicts of the final rule, from the same figures.

Earlier results (2026-11-29, before the rule, when every case was judged at batch 1):

| run                          | digits-mlp          | digits-cnn          | ResNet-18           |
|------------------------------|---------------------|---------------------|---------------------|
| defaults, 01:35-01:48        | 0.944 (0.938-0.962) | 1.009 (0.995-1.036) | 1.026 (1.014-1.031) |
| defaults, 02:11-02:23        | 0.972 (0.962-0.986) | 0.983 (0.967-1.008) | 1.009 (1.007-1.016) |
| defaults, 02:24-02:36        | 0.968 (0.941-0.999) | 1.005 (0.989-1.016) | 1.010 (1.001-1.014) |
| 12 x 5 s, 01:14-01:26 (*)    | 0.953 (0.949-0.959) | 1.002 (0.987-1.021) | 1.008 (0.994-1.023) |
| 12 x 5 s, digits-mlp only    | 0.980 (0.959-0.995) |                     |                     |
| 30 x 3 s, digits-mlp only    | 0.984 (0.964-0.999) |                     |                     |

(*) a probe pinned to the same CPU ran during about a minute of the ResNet-18 rounds. The
method checks (benchmark_app against itself) had medians of 0.989-1.016, and the method
resolves about +-1.5 % (the earlier designs: +-5-20 %). digits-cnn and the ResNet-18 agree
within the goal in every run. digits-mlp reads 2-6 % below benchmark_app (outside the goal in
three of the six runs): the caller effects above. In the last run the callers probe put
deploybench's ``session.run`` at 0.970 of benchmark_app's loop in one process, against a paired
ratio of 0.968 across processes; a bare ``infer()`` on a bound buffer was at 0.841.

    python benchmarks/peer_agreement.py [--rounds 20] [--seconds 3] [--null-rounds 5]
                                        [--cpu N] [--quick] [--models NAME[@BATCH] ...]

Defaults take about 4 minutes per case, 17 for the four default cases. ``--quick``: one short
round, for the test suite; figures printed, not judged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import psutil
from scipy import stats as scipy_stats

from deploybench.metrics.statistics import describe_samples
from deploybench.problems.resolve import resolve_problem
from deploybench.runner import run_experiment
from deploybench.runner.experiment import Progress
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
# benchmark_app's input file holds the case's first BATCH samples of the dataset (360 in
# digits and digits32); 64 keeps every case's batch within them with room to spare.
MAX_BATCH = 64
TOLERANCE = 0.03
BENCHMARK_APP = Path(sys.executable).with_name("benchmark_app")
WORKER_MODULE = "deploybench.harness.worker"
WORKER_WARMING_UP = "; warming up"  # the worker's log line once its model is loaded
BENCHMARK_APP_MEASURING = "Measuring performance"  # benchmark_app's step before its loop
# Turns of 20 ms: the VM's latency levels last 0.5-3 s, so both tools see each level; 100 ms
# turns left a benchmark_app-vs-itself spread of 5 % (see the docstring).
SLICE_SECONDS = 0.02
CHUNK_SECONDS, CALLER_ROUNDS = 0.1, 30  # the callers probe: 3 callers x 30 x 0.1 s
# The callers probe's label (in CALLERS below) of its bare infer() loop.
BARE_CALLER = "bare infer(), bound buffer"
MEDIAN_LINE = re.compile(r"Median:\s+([0-9.]+)\s+(us|ms)")

# Three callers of the same IR in one pinned process, in alternating chunks, so that each
# chunk of one is paired with its neighbours of the others: what the caller does to OpenVINO's
# own time per call, apart from the machine's drift (see "What still differs").
CALLERS = r"""
import gc, json, sys, time
from pathlib import Path
import numpy as np
import openvino as ov
from deploybench.toolchains.base import Deployable, SessionOptions
from deploybench.toolchains.openvino.session import open_session
root, chunk, reps = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
inputs = {n: np.load(f) for n, f in (item.split(":", 1) for item in sys.argv[4].split(","))}
deployable = Deployable.read(root)
props = json.loads((root / "openvino_config.json").read_text())["CPU"]
core = ov.Core()
def request():
    model = core.read_model(str(deployable.entry_path))
    return core.compile_model(model, "CPU", props).create_infer_request()
own = request()  # benchmark_app: the request's own input tensors, shaped and filled once
for i, (name, array) in enumerate(inputs.items()):
    tensor = own.get_input_tensor(i)
    tensor.shape = list(array.shape)
    tensor.data[:] = array
bare = request()  # the caller's own buffers, bound once; nothing else between calls
buffers = [np.ascontiguousarray(a) for a in inputs.values()]
for i, buffer in enumerate(buffers):
    bare.set_input_tensor(i, ov.Tensor(buffer, shared_memory=True))
session = open_session(deployable, SessionOptions(threads=1))
feed = session.prepare(inputs)
clock = time.perf_counter_ns
def app():
    t0 = clock(); own.infer(); t1 = clock()
    return t1 - t0, own.latency * 1e6
def deploybench():  # as the worker times it
    t0 = clock(); session.run(feed); t1 = clock()
    return t1 - t0, session.last_runtime_latency_ns()
def bare_infer():
    t0 = clock(); bare.infer(); t1 = clock()
    return t1 - t0, bare.latency * 1e6
callers = {"benchmark_app's loop": app, "deploybench's session.run": deploybench,
           "bare infer(), bound buffer": bare_infer}
gc.disable()  # as the worker does while timing
medians = {label: [] for label in callers}
for rep in range(reps + 1):  # the first round warms up
    for label, call in callers.items():
        samples = []
        end = clock() + chunk * 1e9
        while clock() < end:
            samples.append(call())
        if rep:
            medians[label].append(np.median(np.array(samples), axis=0))
first = np.array(medians["benchmark_app's loop"])[:, 1]
out = {}
for label, values in medians.items():
    values = np.array(values)
    out[label] = [float(np.median(values[:, 0])), float(np.median(values[:, 1])),
                  float(np.median(values[:, 1] / first))]
print(json.dumps(out))
"""


class Case(NamedTuple):
    """A zoo model and the batch size it is measured at: ``NAME`` (batch 1) or ``NAME@BATCH``."""

    model: str
    batch: int = 1

    def __str__(self) -> str:
        return self.model if self.batch == 1 else f"{self.model}@{self.batch}"


# The ResNet-18 at batch 4 is a second point where the model, not the caller, sets the time.
DEFAULT_CASES = (*(Case(m) for m in MODELS), Case("resnet18-wd4-digits32", 4))
# Cases whose OpenVINO call lasts 10-40 us, where the caller moves OpenVINO's own time by
# 8-16 % (the docstring's "Which cases are judged"): excused from the goal when the run's own
# caller spread confirms it. A fixed list, not the spread alone: on the ResNet-18 (1-3.2 %)
# or digits-cnn at larger batches (3.4-5.1 %) a threshold would judge a case in one run and
# excuse it in the next.
CALLER_BOUND_CASES = frozenset({Case("digits-mlp"), Case("digits-cnn")})


def parse_case(text: str) -> Case:
    """An argparse type: ``NAME`` or ``NAME@BATCH``, or a message naming what is allowed."""
    model, at, batch = text.partition("@")
    if model not in DATASETS:
        raise argparse.ArgumentTypeError(
            f"unknown model {model!r}: choose from {', '.join(MODELS)} (NAME or NAME@BATCH)"
        )
    if not at:
        return Case(model)
    if not batch.isdecimal() or not 1 <= int(batch) <= MAX_BATCH:
        raise argparse.ArgumentTypeError(
            f"batch {batch!r} in {text!r}: give a whole number from 1 to {MAX_BATCH}"
        )
    return Case(model, int(batch))


def experiment(case: Case, seconds: float, warmup: float, cpu: int) -> Any:
    """The deploybench experiment compared with benchmark_app."""
    model = case.model
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
                "batch_size": case.batch,
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


def deploybench_round(
    case: Case,
    seconds: float,
    warmup: float,
    cpu: int,
    workdir: Path,
    progress: Progress | None = None,
) -> Round:
    """One run of the experiment with both of its latency series."""
    outcome = run_experiment(
        experiment(case, seconds, warmup, cpu), workdir=workdir, progress=progress
    )
    record = outcome.record
    if record.status != "succeeded":
        raise SystemExit(f"{case}: deploybench run failed: {record.error}")
    if "runtime_latency_ms" not in record.metrics:
        raise SystemExit(f"{case}: the run recorded no runtime-reported latency")
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


def shapes(deployable: Deployable, batch: int) -> tuple[str, str]:
    """-shape as the IR has it (symbolic dims as ?) and -data_shape at ``batch``."""
    model_shape, data_shape = [], []
    for spec in deployable.inputs:
        dims = [d if isinstance(d, int) else None for d in spec.shape]
        concrete = [batch if d is None else d for d in dims]
        model_shape.append(f"{spec.name}[{','.join('?' if d is None else str(d) for d in dims)}]")
        data_shape.append(f"{spec.name}[{','.join(map(str, concrete))}]")
    return ",".join(model_shape), ",".join(data_shape)


def dataset_inputs(case: Case, directory: Path) -> str:
    """``-i`` for benchmark_app: the problem's first batch of samples, one ``.npy`` per input.

    benchmark_app otherwise fills inputs with uniform(0, 255) noise, and the input data moves
    OpenVINO's inner latency: on digits-mlp a probe measured noise 2-3 % slower than a digits
    sample (paired chunks in one pinned process), about the size of the goal.
    """
    problem = resolve_problem(experiment(case, 1.0, 0.1, 0).problem)
    inputs = problem.load_inputs(limit=case.batch)
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for name, array in inputs.items():
        path = directory / f"{name}.npy"
        np.save(path, np.ascontiguousarray(array))
        files.append(f"{name}:{path}")
    return ",".join(files)


def benchmark_app_command(
    deployable: Deployable, batch: int, seconds: float, cpu: int, static: bool, inputs: str
) -> list[str]:
    """benchmark_app on the deployable's IR and compile properties, pinned to ``cpu``."""
    model_shape, data_shape = shapes(deployable, batch)
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
    return command


BENCHMARK_APP_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def benchmark_app_median(returncode: int | None, output: str) -> float:
    """benchmark_app's median latency in ms from its "Median:" line."""
    found = MEDIAN_LINE.search(output)
    if returncode != 0 or found is None:
        raise SystemExit(f"benchmark_app failed ({returncode}):\n{output}")
    value = float(found.group(1))
    return value / 1e3 if found.group(2) == "us" else value


def benchmark_app(
    deployable: Deployable, batch: int, seconds: float, cpu: int, static: bool, inputs: str
) -> float:
    """benchmark_app's median latency in ms, alone on ``cpu``."""
    command = benchmark_app_command(deployable, batch, seconds, cpu, static, inputs)
    out = subprocess.run(
        command, capture_output=True, text=True, env=BENCHMARK_APP_ENV, check=False
    )
    return benchmark_app_median(out.returncode, out.stdout + out.stderr)


def _exited(pid: int) -> bool:
    """Whether the process is gone or a zombie (a status read: it never reaps the child)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True


def take_turns(
    groups: list[int], slice_seconds: float, abort: threading.Event | None = None
) -> None:
    """Let the process groups run one at a time, in turns of ``slice_seconds``, until one of
    them exits; then let the others run freely. SIGSTOP and SIGCONT on whole groups, so the
    runtime's own threads stop too."""
    turn = 0
    try:
        while not (abort and abort.is_set()) and not any(_exited(g) for g in groups):
            for index, group in enumerate(groups):
                if index != turn:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(group, signal.SIGSTOP)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(groups[turn], signal.SIGCONT)
            time.sleep(slice_seconds)
            turn = (turn + 1) % len(groups)
    finally:
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGCONT)


def start_benchmark_app(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    """benchmark_app in its own process group (so it can be stopped as one), output to log."""
    with log.open("wb") as handle:
        return subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=BENCHMARK_APP_ENV,
            start_new_session=True,
        )


def finish_benchmark_app(process: subprocess.Popen[bytes], log: Path) -> float:
    """Wait for benchmark_app and return its median in ms."""
    return benchmark_app_median(process.wait(), log.read_text(errors="replace"))


def find_worker(timeout: float = 120.0) -> tuple[int, Path]:
    """Pid and log of deploybench's measurement worker, a child of this process."""
    end = time.monotonic() + timeout
    me = psutil.Process()
    while time.monotonic() < end:
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                argv = child.cmdline()
                if WORKER_MODULE in argv and "repetition-" in argv[-1]:
                    # The launcher writes the worker's output next to its request file.
                    return int(child.pid), Path(argv[-1]).with_name("worker.log")
        time.sleep(0.001)
    raise SystemExit("deploybench's measurement worker did not start")


def wait_for_line(log: Path, text: str, pid: int, timeout: float = 120.0) -> bool:
    """Follow ``log`` until it holds ``text`` (True) or process ``pid`` ends (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not _exited(pid):
        with contextlib.suppress(FileNotFoundError):
            if text in log.read_text(errors="replace"):
                return True
        time.sleep(0.001)
    return False


class Pair(NamedTuple):
    """One paired round: deploybench's run and benchmark_app's, taking turns on one CPU."""

    ours: Round
    theirs: float  # benchmark_app's median, ms


def paired_round(
    case: Case, seconds: float, warmup: float, cpu: int, inputs: str, workdir: Path
) -> Pair:
    """One deploybench run whose measurement worker takes turns on ``cpu`` with a
    benchmark_app run started beside it on the round's own deployable."""
    theirs: list[float] = []
    failures: list[BaseException] = []
    abort = threading.Event()
    threads: list[threading.Thread] = []

    def alongside() -> None:
        try:
            worker, worker_log = find_worker()
            wait_for_line(worker_log, WORKER_WARMING_UP, worker)
            deployable = Deployable.read(workdir / "build")
            log = workdir / "benchmark_app.log"
            command = benchmark_app_command(deployable, case.batch, seconds, cpu, False, inputs)
            # Both windows must cover the same stretch of machine time. The worker has loaded
            # its model and is warming up: hold it there while benchmark_app starts alone,
            # then let both go when benchmark_app begins measuring (its warm-up is one
            # inference). The worker's warm-up is timed in wall seconds, so the hold only
            # shortens it: its window then opens after its minimum warm-up runs.
            os.killpg(worker, signal.SIGSTOP)
            try:
                process = start_benchmark_app(command, log)
                try:
                    wait_for_line(log, BENCHMARK_APP_MEASURING, process.pid)
                    take_turns([worker, process.pid], SLICE_SECONDS, abort)
                finally:
                    theirs.append(finish_benchmark_app(process, log))
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker, signal.SIGCONT)
        except BaseException as exc:  # handed to the main thread
            failures.append(exc)

    def progress(phase: str, done: int, total: int) -> None:
        # Called just before the measurement worker is launched.
        if phase == "repetitions" and done == 0 and not threads:
            threads.append(threading.Thread(target=alongside, name="turns"))
            threads[0].start()

    try:
        ours = deploybench_round(case, seconds, warmup, cpu, workdir, progress)
    except BaseException:
        abort.set()  # never leave a process stopped
        raise
    finally:
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    if not theirs:
        raise SystemExit(f"{case}: benchmark_app did not run beside deploybench")
    return Pair(ours, theirs[0])


def null_round(
    deployable: Deployable, batch: int, seconds: float, cpu: int, inputs: str, workdir: Path
) -> float:
    """The method checked on itself: two identical benchmark_app runs taking turns on
    ``cpu`` exactly as a paired round does; returns the ratio of their medians."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = benchmark_app_command(deployable, batch, seconds, cpu, False, inputs)
    logs = [workdir / f"benchmark_app-{i}.log" for i in range(2)]
    processes = [start_benchmark_app(command, log) for log in logs]
    try:
        take_turns([p.pid for p in processes], SLICE_SECONDS)
    finally:
        medians = [finish_benchmark_app(p, log) for p, log in zip(processes, logs, strict=True)]
    return medians[0] / medians[1]


def callers(deployable: Deployable, inputs: str, cpu: int, chunk: float, reps: int) -> Any:
    """Wall and inner medians (ns) and the paired inner ratio to benchmark_app's loop, per
    caller of the deployable's IR, in one process pinned to ``cpu``."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            str(cpu),
            sys.executable,
            "-c",
            CALLERS,
            str(deployable.root),
            str(chunk),
            str(reps),
            inputs,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"the callers probe failed:\n{out.stderr}")
    return json.loads(out.stdout)


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


def caller_spread(probe: dict[str, list[float]]) -> float:
    """How far OpenVINO's own time per call moves between two plain callers of the same IR
    that owe nothing to deploybench: a bare ``infer()`` on a bound buffer against
    benchmark_app's loop (``|1 - paired inner ratio|`` from :func:`callers`)."""
    return abs(1.0 - probe[BARE_CALLER][2])


def judge(ratio: float, spread: float, case: Case, quick: bool) -> str:
    """The verdict on one case's runtime-reported ratio.

    ``caller-bound`` for a case of :data:`CALLER_BOUND_CASES` whose caller spread in this
    run confirms it (above the goal): two different callers (deploybench and benchmark_app
    are two) can then land on either side of the goal whatever their measurement does, so the
    goal cannot tell a faithful tool from a biased one there, and the ratio is printed, not
    judged. Every other case is judged, whatever its spread.
    """
    if quick:
        return "not judged"
    if case in CALLER_BOUND_CASES and spread > TOLERANCE:
        return "caller-bound"
    return "PASS" if abs(ratio - 1.0) <= TOLERANCE else "FAIL"


def conclusion(verdicts: dict[str, str]) -> tuple[bool, str]:
    """Whether the run passes, and its last line: it fails when a judged case is outside the
    goal or when no case could be judged (all caller-bound)."""

    def having(verdict: str) -> list[str]:
        return [case for case, given in verdicts.items() if given == verdict]

    bound = having("caller-bound")
    excused = f"; caller-bound, not judged: {', '.join(bound)}" if bound else ""
    if having("FAIL"):
        return False, f"FAIL: outside the goal: {', '.join(having('FAIL'))}{excused}"
    if not having("PASS"):
        return False, f"FAIL: no case judged{excused}; add one where the model sets the time"
    return True, f"PASS: within the goal: {', '.join(having('PASS'))}{excused}"


def main() -> int:
    """Measure every case with both tools; exit 1 when a judged ratio is outside the goal or
    no case could be judged."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive(int), default=20, help="paired rounds per case")
    parser.add_argument(
        "--seconds", type=positive(float), default=3.0, help="measured time per round"
    )
    parser.add_argument(
        "--null-rounds",
        type=positive(int),
        default=5,
        help="benchmark_app-against-itself rounds per case (the method's own spread)",
    )
    parser.add_argument("--warmup", type=positive(float), default=0.5)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--quick", action="store_true", help="1 short round; not judged")
    parser.add_argument(
        "--models",
        nargs="+",
        type=parse_case,
        default=list(DEFAULT_CASES),
        metavar="NAME[@BATCH]",
        help=f"zoo models to compare, at batch 1 or @BATCH; models: {', '.join(MODELS)}",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.null_rounds, args.seconds, args.warmup = 1, 1, 0.3, 0.1
    if not BENCHMARK_APP.exists():
        print(f"benchmark_app not found next to {sys.executable}: pip install openvino")
        return 1
    print(
        f"pinned to CPU {args.cpu}; openvino f32, hint latency, 1 thread; "
        f"{args.rounds} paired round(s) of {args.seconds:g} s per case, in which deploybench's "
        f"worker and benchmark_app take turns on the CPU in {SLICE_SECONDS * 1e3:g} ms slices"
        f"{' (quick: not judged)' if args.quick else ''}\n"
    )
    verdicts: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="peer-agreement-") as tmp:
        for case in dict.fromkeys(args.models):  # each case once, in the order given
            folder = Path(tmp) / str(case)
            inputs = dataset_inputs(case, folder / "inputs")
            pairs = [
                paired_round(case, args.seconds, args.warmup, args.cpu, inputs, folder / f"r{i}")
                for i in range(args.rounds)
            ]
            deployable = pairs[-1].ours.deployable
            nulls = np.array(
                [
                    null_round(
                        deployable, case.batch, args.seconds, args.cpu, inputs, folder / f"n{i}"
                    )
                    for i in range(args.null_rounds)
                ]
            )
            theirs = [pair.theirs for pair in pairs]
            b = float(np.median(theirs))
            print(f"{case.model} (batch {case.batch})")
            print(
                f"  benchmark_app median   {b * 1e3:9.2f} us   (IR shape, -inference_only; "
                f"{len(theirs)} runs, {min(theirs) * 1e3:.2f}-{max(theirs) * 1e3:.2f} us)"
            )
            ratios: dict[str, float] = {}
            series = {
                "runtime-reported": [
                    (p.ours.runtime_median, p.ours.runtime_samples) for p in pairs
                ],
                "harness-timed": [(p.ours.median, p.ours.samples) for p in pairs],
            }
            for label, runs in series.items():
                ours = [median for median, _ in runs]
                stats = describe_samples([g for _, g in runs], confidence=0.95, seed=0)
                ci = stats.ci.median or (float("nan"), float("nan"))
                a = float(np.median(ours))
                # Each deploybench run is compared with the benchmark_app run that took turns
                # with it: the two saw the same stretches of machine time.
                paired = np.array([x / y for x, y in zip(ours, theirs, strict=True)])
                ratios[label] = float(np.median(paired))
                low, high = paired_ci(paired)
                print(
                    f"  deploybench {label:<17} median {a * 1e3:9.2f} us   (all rounds: "
                    f"{stats.median * 1e3:.2f} us, 95 % CI {ci[0] * 1e3:.2f}-{ci[1] * 1e3:.2f} us;"
                    f" {len(ours)} runs, {min(ours) * 1e3:.2f}-{max(ours) * 1e3:.2f} us)"
                )
                print(
                    f"      paired ratio {ratios[label]:.3f} (95 % CI {low:.3f}-{high:.3f}; "
                    f"rounds {paired.min():.3f}-{paired.max():.3f}; ratio of medians {a / b:.3f})"
                )
            print(
                f"  method check, benchmark_app against itself taking turns the same way: "
                f"median ratio {np.median(nulls):.3f} ({nulls.size} runs, "
                f"{nulls.min():.3f}-{nulls.max():.3f})"
            )
            alone = benchmark_app(deployable, case.batch, args.seconds, args.cpu, False, inputs)
            static = benchmark_app(deployable, case.batch, args.seconds, args.cpu, True, inputs)
            print(
                f"  context: benchmark_app alone on CPU {args.cpu} (no turns): {alone * 1e3:.2f} us"
                f" on the IR's shape, {static * 1e3:.2f} us on a static batch-{case.batch} model"
            )
            print(
                "  callers of the same IR in one pinned process, alternating "
                f"{CHUNK_SECONDS:g} s chunks (wall = perf_counter_ns around the call; inner = "
                "InferRequest.latency; ratio = paired inner ratio to benchmark_app's loop)"
            )
            reps = 3 if args.quick else CALLER_ROUNDS
            probe = callers(deployable, inputs, args.cpu, CHUNK_SECONDS, reps)
            for label, (wall, inner, ratio) in probe.items():
                print(
                    f"    {label:<28} wall {wall / 1e3:8.2f} us   inner {inner / 1e3:8.2f} us"
                    f"   ratio {ratio:.3f}"
                )
            spread = caller_spread(probe)
            judged = ratios["runtime-reported"]
            verdict = verdicts[str(case)] = judge(judged, spread, case, args.quick)
            print(
                f"  caller spread: OpenVINO's own time moves {spread * 100:.1f} % between two "
                f"plain callers of this IR (bare infer() against benchmark_app's loop)"
            )
            print(
                f"  ratio to benchmark_app: runtime-reported {judged:.3f} (goal "
                f"{1 - TOLERANCE:.2f}-{1 + TOLERANCE:.2f}), harness-timed "
                f"{ratios['harness-timed']:.3f} (informative)  {verdict.upper()}"
            )
            print()
    if args.quick:
        print("done (quick)")
        return 0
    passed, line = conclusion(verdicts)
    print(line)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
