"""benchmarks/peer_agreement.py runs end to end at small sizes (``--quick``): deploybench's
OpenVINO worker and the wheel's ``benchmark_app`` take turns measuring digits-mlp (the full
run adds digits-cnn and the ResNet-18), both paired ratios are printed, runtime-reported and
harness-timed (not judged in quick mode), with the method's check against itself; and no
process is left stopped."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import psutil
import pytest

pytest.importorskip("openvino")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "peer_agreement.py"
NUMBER = r"[\d.]+"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset to pin both tools")
@pytest.mark.skipif(
    not Path(sys.executable).with_name("benchmark_app").exists(),
    reason="benchmark_app is not installed next to this Python",
)
def test_peer_agreement_quick(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--models", "digits-mlp"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for model in ("digits-mlp",):
        assert re.search(
            rf"{model}\n"
            rf"\s+benchmark_app median\s+{NUMBER} us.*\n"
            rf"\s+deploybench runtime-reported\s+median\s+{NUMBER} us\s+\(all rounds: "
            rf"{NUMBER} us, 95 % CI {NUMBER}-{NUMBER} us; 1 runs, .*\)\n"
            rf"\s+paired ratio {NUMBER} \(95 % CI .*; rounds {NUMBER}-{NUMBER}; "
            rf"ratio of medians {NUMBER}\)\n"
            rf"\s+deploybench harness-timed\s+median\s+{NUMBER} us\s+\(all rounds: .*\n"
            rf"\s+paired ratio .*\n"
            rf"\s+method check, benchmark_app against itself taking turns the same way: "
            rf"median ratio {NUMBER} \(1 runs, .*\)\n"
            rf"\s+ratio to benchmark_app: runtime-reported {NUMBER} \(judged, goal "
            rf"0\.97-1\.03\), harness-timed {NUMBER} \(informative\)  not judged\n",
            done.stdout,
        ), output
    for caller in ("benchmark_app's loop", "deploybench's session.run", "bare infer()"):
        assert re.search(
            rf"    {re.escape(caller)}.* wall\s+{NUMBER} us   inner\s+{NUMBER} us   ratio {NUMBER}",
            done.stdout,
        ), output
    assert done.stdout.rstrip().endswith("done (quick)"), output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--rounds", "0", "0 is not above 0"),
        ("--seconds", "ten", "'ten' is not a float"),
        ("--null-rounds", "-1", "-1 is not above 0"),
    ],
)
def test_peer_agreement_refuses_bad_options(option: str, value: str, message: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), option, value],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"argument {option}: {message}" in done.stderr


def _load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peer_agreement", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_take_turns_runs_one_group_at_a_time_and_frees_the_survivor() -> None:
    """Two busy processes taking turns share the CPU time about equally; when the short one
    exits, the turns end and the other is left running, not stopped."""
    bench = _load_benchmark()
    # Busy until a wall-clock deadline, then print the CPU time it got.
    busy = (
        "import time\nend = time.monotonic() + {0}\n"
        "while time.monotonic() < end: pass\nprint(time.process_time())\n"
    )
    short, long_ = (
        subprocess.Popen(
            [sys.executable, "-c", busy.format(s)], stdout=subprocess.PIPE, start_new_session=True
        )
        for s in (1.0, 3.0)
    )
    try:
        bench.take_turns([short.pid, long_.pid], 0.02, threading.Event())
        out, _ = short.communicate(timeout=5)
        assert psutil.Process(long_.pid).status() != psutil.STATUS_STOPPED
        # The short one ran only in its turns: about half of its 1 s, never all of it.
        assert 0.1 < float(out) < 0.75, out
        assert long_.wait(timeout=10) == 0
    finally:
        for process in (short, long_):
            process.kill()
            process.wait()


def test_take_turns_stops_on_abort_and_leaves_nothing_stopped() -> None:
    bench = _load_benchmark()
    sleepers = [subprocess.Popen(["sleep", "30"], start_new_session=True) for _ in range(2)]
    abort = threading.Event()
    try:
        timer = threading.Timer(0.2, abort.set)
        timer.start()
        bench.take_turns([p.pid for p in sleepers], 0.02, abort)
        timer.join()
        for process in sleepers:
            assert psutil.Process(process.pid).status() != psutil.STATUS_STOPPED
    finally:
        for process in sleepers:
            process.kill()
            process.wait()
