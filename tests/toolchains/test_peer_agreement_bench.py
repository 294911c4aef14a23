"""benchmarks/peer_agreement.py runs end to end at small sizes (``--quick``): deploybench's
OpenVINO worker and the wheel's ``benchmark_app`` take turns measuring digits-mlp (the full
run adds digits-cnn and the ResNet-18 at batch 1 and 4), both paired ratios are printed,
runtime-reported and harness-timed (not judged in quick mode), with the method's check against
itself and the caller spread; and no process is left stopped. The rules that decide which
cases are judged and whether a run passes are tested on their own."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType, SimpleNamespace

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
    assert re.search(
        rf"digits-mlp \(batch 1\)\n"
        rf"\s+benchmark_app median\s+{NUMBER} us.*\n"
        rf"\s+deploybench runtime-reported\s+median\s+{NUMBER} us\s+\(all rounds: "
        rf"{NUMBER} us, 95 % CI {NUMBER}-{NUMBER} us; 1 runs, .*\)\n"
        rf"\s+paired ratio {NUMBER} \(95 % CI .*; rounds {NUMBER}-{NUMBER}; "
        rf"ratio of medians {NUMBER}\)\n"
        rf"\s+deploybench harness-timed\s+median\s+{NUMBER} us\s+\(all rounds: .*\n"
        rf"\s+paired ratio .*\n"
        rf"\s+method check, benchmark_app against itself taking turns the same way: "
        rf"median ratio {NUMBER} \(1 runs, .*\)\n"
        rf"\s+context: benchmark_app alone .* on a static batch-1 model\n"
        rf"\s+callers of the same IR .*\n"
        rf"(\s+.* wall\s+{NUMBER} us   inner\s+{NUMBER} us   ratio {NUMBER}\n){{3}}"
        rf"\s+caller spread: OpenVINO's own time moves {NUMBER} % between two plain callers.*\n"
        rf"\s+ratio to benchmark_app: runtime-reported {NUMBER} \(goal 0\.97-1\.03\), "
        rf"harness-timed {NUMBER} \(informative\)  NOT JUDGED\n",
        done.stdout,
    ), output
    for caller in ("benchmark_app's loop", "deploybench's session.run", "bare infer()"):
        assert re.search(rf"    {re.escape(caller)}.* wall", done.stdout), output
    assert done.stdout.rstrip().endswith("done (quick)"), output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--rounds", "0", "0 is not above 0"),
        ("--seconds", "ten", "'ten' is not a float"),
        ("--null-rounds", "-1", "-1 is not above 0"),
        ("--models", "resnet18", "unknown model 'resnet18': choose from digits-mlp,"),
        ("--models", "digits-cnn@0", "batch '0' in 'digits-cnn@0': give a whole number from 1"),
        ("--models", "digits-cnn@4x", "batch '4x' in 'digits-cnn@4x'"),
        (
            "--models",
            "digits-cnn@65",
            "batch '65' in 'digits-cnn@65': give a whole number from 1 to 64",
        ),
        ("--models", "digits-cnn@", "batch '' in 'digits-cnn@'"),
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


def test_cases_parse_with_their_batch() -> None:
    bench = _load_benchmark()
    assert bench.parse_case("digits-cnn") == bench.Case("digits-cnn", 1)
    assert bench.parse_case("resnet18-wd4-digits32@4") == bench.Case("resnet18-wd4-digits32", 4)
    assert str(bench.Case("digits-mlp", 8)) == "digits-mlp@8"
    assert str(bench.Case("digits-mlp")) == "digits-mlp"
    assert bench.parse_case("digits-mlp@64") == bench.Case("digits-mlp", 64)
    assert bench.parse_case("digits-mlp@1") == bench.parse_case("digits-mlp")


def test_the_default_cases_include_judged_ones() -> None:
    bench = _load_benchmark()
    judged = [c for c in bench.DEFAULT_CASES if c not in bench.CALLER_BOUND_CASES]
    assert bench.Case("resnet18-wd4-digits32", 4) in judged
    assert bench.Case("resnet18-wd4-digits32") in judged


def test_benchmark_app_gets_the_cases_batch_on_the_irs_own_shape(tmp_path: Path) -> None:
    bench = _load_benchmark()
    deployable = SimpleNamespace(
        root=tmp_path,
        entry_path=tmp_path / "model.xml",
        inputs=[SimpleNamespace(name="input", shape=["N", 3, 32, 32])],
    )
    command = bench.benchmark_app_command(deployable, 4, 3.0, 1, False, "input:x.npy")
    assert command[:3] == ["taskset", "-c", "1"]
    options = dict(zip(command[4::2], command[5::2], strict=True))
    assert options["-shape"] == "input[?,3,32,32]"
    assert options["-data_shape"] == "input[4,3,32,32]"
    assert options["-inference_only"] == "true" and options["-t"] == "3"
    static = bench.benchmark_app_command(deployable, 4, 0.5, 1, True, "input:x.npy")
    assert "input[4,3,32,32]" in static and "-data_shape" not in static
    assert "-niter" in static  # under a second: an iteration count, -t takes whole seconds


@pytest.mark.parametrize(
    ("ratio", "spread", "model", "quick", "verdict"),
    [
        (1.02, 0.01, "resnet18-wd4-digits32", False, "PASS"),
        (0.971, 0.029, "digits-mlp", False, "PASS"),  # the run did not confirm it: judged
        (0.95, 0.01, "resnet18-wd4-digits32", False, "FAIL"),
        (1.04, 0.02, "digits-cnn", False, "FAIL"),
        # A small model whose caller spread in the run is above the goal: printed, not judged,
        # whether its ratio happens to land inside the goal or not.
        (0.95, 0.16, "digits-mlp", False, "caller-bound"),
        (1.00, 0.08, "digits-cnn", False, "caller-bound"),
        # Any other model is judged whatever its spread.
        (0.95, 0.05, "resnet18-wd4-digits32", False, "FAIL"),
        (1.50, 0.01, "digits-mlp", True, "not judged"),
        # Only the listed cases are excused: digits-cnn at another batch is judged.
        (0.95, 0.05, "digits-cnn@16", False, "FAIL"),
    ],
)
def test_judge_excuses_only_the_small_models_and_only_on_the_runs_evidence(
    ratio: float, spread: float, model: str, quick: bool, verdict: str
) -> None:
    bench = _load_benchmark()
    assert bench.judge(ratio, spread, bench.parse_case(model), quick) == verdict


def test_caller_spread_compares_two_callers_that_owe_nothing_to_deploybench() -> None:
    bench = _load_benchmark()
    probe = {
        "benchmark_app's loop": [30.0, 20.0, 1.0],
        "deploybench's session.run": [40.0, 10.0, 0.5],  # not part of the spread
        "bare infer(), bound buffer": [25.0, 17.0, 0.85],
    }
    assert bench.caller_spread(probe) == pytest.approx(0.15)


@pytest.mark.parametrize(
    ("verdicts", "passed", "line"),
    [
        (
            {"digits-mlp": "caller-bound", "resnet18-wd4-digits32": "PASS"},
            True,
            "PASS: within the goal: resnet18-wd4-digits32; caller-bound, not judged: digits-mlp",
        ),
        (
            {"digits-cnn": "PASS", "resnet18-wd4-digits32@4": "FAIL"},
            False,
            "FAIL: outside the goal: resnet18-wd4-digits32@4",
        ),
        (
            {"digits-mlp": "caller-bound", "resnet18-wd4-digits32": "FAIL"},
            False,
            "FAIL: outside the goal: resnet18-wd4-digits32; caller-bound, not judged: digits-mlp",
        ),
        # Nothing judged is no pass: the goal was checked nowhere.
        (
            {"digits-mlp": "caller-bound", "digits-cnn": "caller-bound"},
            False,
            "FAIL: no case judged; caller-bound, not judged: digits-mlp, digits-cnn; add one "
            "where the model sets the time",
        ),
    ],
)
def test_the_run_passes_only_when_every_judged_case_does_and_one_was_judged(
    verdicts: dict[str, str], passed: bool, line: str
) -> None:
    assert _load_benchmark().conclusion(verdicts) == (passed, line)
