"""`deploybench run` end to end: JSON lines, --out folder, exit 1 for a failed run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from deploybench.cli.app import app
from deploybench.hashing import sha256_file
from deploybench.plugins import PluginKind, registered
from deploybench.testing.experiments import FAST_PLAN
from deploybench.testing.fakes import FakeToolchain


def _write(tmp_path: Path, name: str, toolchain: dict[str, object]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
                "toolchain": toolchain,
                "environment": {"threads": 1},
                "measurement": {**FAST_PLAN, "repetitions": 1},
            }
        )
    )
    return path


def test_json_lines_and_out_folder(tmp_path: Path) -> None:
    first = _write(tmp_path, "a", {"name": "onnxruntime"})
    second = _write(
        tmp_path, "b", {"name": "onnxruntime", "config": {"quantization": "dynamic-int8"}}
    )
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(first), str(second), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert [r["experiment"]["name"] for r in records] == ["a", "b"]
    for record in records:
        assert record["status"] == "succeeded"
        stored = json.loads((out / "runs" / f"{record['id']}.json").read_text())
        assert stored == record
        for digest in record["artifacts"].values():
            assert sha256_file(out / "artifacts" / digest) == digest


def test_failed_run_exits_1_with_a_failed_record(tmp_path: Path) -> None:
    path = _write(tmp_path, "crash", {"name": "fake", "config": {"fault": "crash"}})
    with registered(PluginKind.TOOLCHAIN, "fake", FakeToolchain):
        result = CliRunner().invoke(app, ["run", str(path), "--json"])
    assert result.exit_code == 1
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["status"] == "failed" and record["error"]["kind"] == "crash"
    assert "log" in record["artifacts"]


def test_second_file_is_checked_before_the_first_runs(tmp_path: Path) -> None:
    good = _write(tmp_path, "good", {"name": "onnxruntime"})
    bad = _write(tmp_path, "bad", {"name": "no-such-toolchain"})
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(good), str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert "unknown toolchain 'no-such-toolchain'" in result.stderr
    assert not out.exists()
