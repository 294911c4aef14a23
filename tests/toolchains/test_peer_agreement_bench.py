"""benchmarks/peer_agreement.py runs end to end at small sizes (``--quick``): deploybench's
OpenVINO run and the wheel's ``benchmark_app`` both measure digits-mlp (the full run adds
digits-cnn and the ResNet-18), and the paired ratio is printed (not judged in quick mode)."""

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
            rf"\s+deploybench median\s+{NUMBER} us\s+\(all rounds: {NUMBER} us, 95 % CI "
            rf"{NUMBER}-{NUMBER} us\)\n"
            rf"\s+benchmark_app median\s+{NUMBER} us.*\n"
            rf"\s+ratio {NUMBER} = median of the paired round ratios \(goal 0\.97-1\.03\)  "
            rf"not judged\n",
            done.stdout,
        ), output
    assert "infer(feed, share_inputs=True)" in done.stdout, output
    assert done.stdout.rstrip().endswith("done (quick)"), output
