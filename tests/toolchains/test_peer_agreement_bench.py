"""benchmarks/peer_agreement.py runs end to end at small sizes (``--quick``): deploybench's
OpenVINO run and the wheel's ``benchmark_app`` both measure digits-mlp (the full run adds
digits-cnn and the ResNet-18), and both paired ratios are printed, runtime-reported and
harness-timed (not judged in quick mode)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

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
            rf"\s+bracketed ratio {NUMBER} \(95 % CI .*; rounds {NUMBER}-{NUMBER}; "
            rf"ratio of medians {NUMBER}\)\n"
            rf"\s+deploybench harness-timed\s+median\s+{NUMBER} us\s+\(all rounds: .*\n"
            rf"\s+bracketed ratio .*\n"
            rf"\s+ratio to benchmark_app: runtime-reported {NUMBER} \(judged, goal "
            rf"0\.97-1\.03\), harness-timed {NUMBER} \(informative\)  not judged\n",
            done.stdout,
        ), output
    assert "infer(feed, share_inputs=True)" in done.stdout, output
    assert done.stdout.rstrip().endswith("done (quick)"), output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--rounds", "0", "0 is not above 0"), ("--seconds", "ten", "'ten' is not a float")],
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
