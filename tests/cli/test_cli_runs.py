"""`deploybench runs ...`, `verify`, `run --discard`, `db` against a real store of real runs."""

from __future__ import annotations

import json
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from deploybench.cli.app import app
from deploybench.services.store import open_store
from deploybench.store.flatten import flat_row
from deploybench.testing.experiments import FAST_PLAN


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data folder holding two stored runs (fp32 and dynamic INT8 of digits-mlp)."""
    folder = tmp_path_factory.mktemp("runs-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("DEPLOYBENCH_HOME", str(folder))
    for name, config in (("fp32", {}), ("int8", {"quantization": "dynamic-int8"})):
        spec = folder / f"{name}.yaml"
        spec.write_text(
            yaml.safe_dump(
                {
                    "name": name,
                    "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
                    "toolchain": {"name": "onnxruntime", "config": config},
                    "environment": {"threads": 1},
                    "measurement": FAST_PLAN,
                }
            )
        )
        result = CliRunner().invoke(app, ["run", str(spec), "--json"])
        assert result.exit_code == 0, result.output
    yield folder
    patch.undo()


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(home))
    return home


def _ids(**where: str) -> list[str]:
    args = ["runs", "list", "--json"]
    for key, value in where.items():
        args += [f"--{key}", value]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line)["experiment"]["name"] for line in result.stdout.splitlines()]


def test_list_filters(env: Path) -> None:
    assert _ids() == ["int8", "fp32"]
    assert _ids(experiment="fp32") == ["fp32"]
    assert _ids(toolchain="onnxruntime", status="succeeded") == ["int8", "fp32"]
    assert _ids(target="board") == []
    assert _ids(where="accuracy.accuracy>0.9") == ["int8", "fp32"]
    assert _ids(where="latency_ms.p99<0") == []
    assert _ids(since="2000-01-01") == ["int8", "fp32"]
    assert _ids(until="2000-01-01") == []


def test_bad_filters_exit_2(env: Path) -> None:
    result = CliRunner().invoke(app, ["runs", "list", "--where", "latency_ms.p99 is small"])
    assert result.exit_code == 2 and "NAME.STATISTIC OP NUMBER" in result.stderr
    result = CliRunner().invoke(app, ["runs", "list", "--status", "maybe"])
    assert result.exit_code == 2


def test_show_verify_and_unknown_ids(env: Path) -> None:
    run_id = open_store().list_runs()[0].record.id
    result = CliRunner().invoke(app, ["runs", "show", run_id[:20]])
    assert result.exit_code == 0 and "validity" in result.stdout
    assert "integrity: ok" in result.stderr
    assert CliRunner().invoke(app, ["verify", run_id]).exit_code == 0
    for args in (["runs", "show", "nope"], ["verify", "nope"], ["runs", "replay", "nope"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "no run 'nope'" in result.stderr


def test_compare_gives_ratio_and_test(env: Path) -> None:
    ids = [r.record.id for r in open_store().list_runs()]
    result = CliRunner().invoke(app, ["runs", "compare", *ids])
    assert result.exit_code == 0, result.output
    assert "ratio of medians" in result.stdout and "significant" in result.stdout
    assert CliRunner().invoke(app, ["runs", "compare", ids[0]]).exit_code == 2


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_reads_back_as_the_store(env: Path, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"runs.{fmt}"
    result = CliRunner().invoke(app, ["runs", "export", "--format", fmt, "-o", str(path)])
    assert result.exit_code == 0, result.output
    frame = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](path)
    expected = {
        r.record.id: flat_row(r.record.model_dump(mode="json")) for r in open_store().list_runs()
    }
    assert sorted(frame["id"]) == sorted(expected)
    for row in frame.to_dict(orient="records"):
        want = expected[row["id"]]
        for key in ("experiment", "status", "latency_ms.median", "accuracy.accuracy"):
            got = row[key]
            assert got == pytest.approx(want[key]) if isinstance(got, float) else got == want[key]


def test_corrupted_artifact_is_reported_and_not_shown_as_valid(env: Path) -> None:
    store = open_store()
    run = store.list_runs()[-1].record
    path = store.artifacts.path_of(run.artifacts["raw_latencies"])  # type: ignore[attr-defined]
    original = path.read_bytes()
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(original[:100] + bytes([original[100] ^ 0xFF]) + original[101:])
    try:
        result = CliRunner().invoke(app, ["verify", run.id])
        assert result.exit_code == 1 and "corrupted" in result.stdout
        result = CliRunner().invoke(app, ["runs", "show", run.id])
        assert result.exit_code == 1 and "integrity: FAILED" in result.stderr
    finally:
        path.write_bytes(original)
    assert CliRunner().invoke(app, ["verify", run.id]).exit_code == 0


def test_replay_uses_stored_inputs_and_links_the_original(env: Path) -> None:
    store = open_store()
    original = store.list_runs()[-1].record
    result = CliRunner().invoke(app, ["runs", "replay", original.id, "--json"])
    assert result.exit_code == 0, result.output
    replayed = json.loads(result.stdout.strip().splitlines()[-1])
    assert replayed["id"] != original.id
    assert replayed["inputs"] == original.inputs
    assert replayed["experiment"] == original.experiment
    assert store.get_run(replayed["id"]).replay_of == original.id
    assert CliRunner().invoke(app, ["runs", "delete", replayed["id"], "--yes"]).exit_code == 0


def test_delete_needs_confirmation(env: Path) -> None:
    run_id = open_store().list_runs()[0].record.id
    result = CliRunner().invoke(app, ["runs", "delete", run_id])
    assert result.exit_code == 2 and "--yes" in result.stderr
    assert open_store().get_run(run_id)


def test_discarded_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(home))
    spec = tmp_path / "x.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "problem": {"model": "zoo:diabetes-linear", "dataset": "zoo:diabetes"},
                "toolchain": {"name": "onnxruntime"},
                "measurement": {**FAST_PLAN, "repetitions": 1},
            }
        )
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the run's work folder goes here
    result = CliRunner().invoke(app, ["run", str(spec), "--discard", "--json"])
    assert result.exit_code == 0, result.output
    assert "discarded" in result.stderr
    assert not (home / "artifacts").exists() or not any((home / "artifacts").rglob("objects/*/*"))
    assert not (home / "deploybench.db").exists()
    assert list(scratch.iterdir()) == []


def test_db_upgrade_and_status(env: Path) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0 and "-> 0004" in result.stderr
    result = CliRunner().invoke(app, ["db", "status"])
    assert result.exit_code == 0 and "schema: 0004" in result.stdout
