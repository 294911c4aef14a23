"""Two ONNX Runtime versions in one campaign: the installed one and an older release that
runs in its own environment, built for real from the package index (~16 MB download)."""

from __future__ import annotations

import json
from pathlib import Path

from deploybench.runner import run_experiment
from deploybench.spec.experiment import Experiment
from deploybench.testing.experiments import make_experiment
from deploybench.toolchains.envs import environment_key, envs_root, list_environments
from deploybench.toolchains.onnxruntime.toolchain import OnnxRuntimeToolchain

OLD = "1.22.0"


def _pinned(version: str) -> Experiment:
    experiment = make_experiment(config={"graph_optimization": "basic"}, name=f"ort-{version}")
    toolchain = experiment.toolchain.model_copy(update={"version": f"=={version}"})
    return experiment.model_copy(update={"toolchain": toolchain})


def test_two_versions_side_by_side_record_their_own_version(tmp_path: Path) -> None:
    installed = OnnxRuntimeToolchain.tool_version()
    assert installed is not None and installed != OLD
    records = {}
    for version in (installed, OLD):
        outcome = run_experiment(_pinned(version), workdir=tmp_path / version)
        assert outcome.record.status == "succeeded", outcome.record.error
        records[version] = json.loads(outcome.record.model_dump_json())

    for version, record in records.items():
        # Reported from inside the measurement worker, by the runtime that ran.
        assert record["session"]["version"] == version
        assert record["environment"]["packages"]["onnxruntime"] == version
        assert record["metrics"]["accuracy"]["accuracy"] > 0.9
    env_python = records[OLD]["environment"]["python"]
    expected = envs_root() / environment_key([f"onnxruntime=={OLD}"])
    assert env_python["prefix"] == str(expected)
    assert records[installed]["environment"]["python"]["prefix"] != str(expected)
    listed = [e for e in list_environments() if e.toolchain == "onnxruntime"]
    assert [(e.versions["onnxruntime"], e.state) for e in listed] == [(OLD, "ready")]

    # A second run reuses the cached environment (no rebuild: same folder, same metadata).
    before = (expected / "env.json").stat().st_mtime_ns
    again = run_experiment(_pinned(OLD), workdir=tmp_path / "again")
    assert again.record.session["version"] == OLD
    assert (expected / "env.json").stat().st_mtime_ns == before
