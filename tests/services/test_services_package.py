"""Reproduction packages (REQ-00047): contents, manifest, requirements closure, refusals,
and (slow) a round trip through a fresh virtual environment."""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import os
import stat
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from deploybench.errors import UserError
from deploybench.hashing import sha256_file
from deploybench.runner import prepare_experiment
from deploybench.runner.record import RunRecord
from deploybench.services import package as package_module
from deploybench.services.package import PackageError, write_package
from deploybench.services.requirements_closure import (
    dependency_closure,
    lock_lines,
    pinned_requirements,
)
from deploybench.services.runs import execute_and_keep
from deploybench.services.store import open_store
from deploybench.spec import load_experiment
from deploybench.store.sql import SqlResultStore
from deploybench.testing.experiments import make_experiment


@dataclass(frozen=True)
class Packaged:
    store: SqlResultStore
    record: RunRecord
    zip_path: Path
    folder: Path  # the zip, extracted


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packaged]:
    """One real stored run (diabetes, onnxruntime) in a private store, packaged once."""
    root = tmp_path_factory.mktemp("package")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEPLOYBENCH_HOME", str(root / "home"))
        patch.delenv("DEPLOYBENCH_DB_URL", raising=False)
        store = open_store()
        experiment = make_experiment(model="zoo:diabetes-linear", dataset="zoo:diabetes")
        record = execute_and_keep(prepare_experiment(experiment), store).record
        assert record.status == "succeeded"
        zip_path = write_package(store, record.id, root / "repro.zip")
        folder = root / "extracted"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(folder)
        yield Packaged(store, record, zip_path, folder)
        store.close()


def test_zip_holds_every_part_and_the_manifest_hashes_them(packaged: Packaged) -> None:
    with zipfile.ZipFile(packaged.zip_path) as archive:
        members = {info.filename: info for info in archive.infolist()}
        contents = {name: archive.read(name) for name in members}
    expected = {
        "experiment.yaml",
        "inputs/model.onnx",
        "inputs/dataset.npz",
        "requirements.lock",
        "requirements.txt",
        "environment.json",
        "run.json",
        "manifest.json",
        "README.md",
        "run.sh",
        "Dockerfile",
        "deploybench-src/pyproject.toml",
        "deploybench-src/src/deploybench/__init__.py",
        "deploybench-src/src/deploybench/py.typed",
        "deploybench-src/src/deploybench/store/migrations/script.py.mako",
        "deploybench-src/src/deploybench/services/package.py",
    }
    assert expected <= set(members)
    assert not [name for name in members if "__pycache__" in name or name.endswith(".pyc")]
    manifest = json.loads(contents["manifest.json"])
    assert manifest["run_id"] == packaged.record.id
    assert set(manifest["files"]) == set(members) - {"manifest.json"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(contents[name]).hexdigest() == digest, name
    assert stat.S_IMODE(members["run.sh"].external_attr >> 16) == 0o755
    assert stat.S_IMODE(members["README.md"].external_attr >> 16) == 0o644


def test_experiment_loads_and_points_at_the_verified_inputs(packaged: Packaged) -> None:
    experiment = load_experiment(packaged.folder / "experiment.yaml")
    problem = experiment.problem
    assert problem.model.path == packaged.folder / "inputs" / "model.onnx"
    assert problem.dataset.path == packaged.folder / "inputs" / "dataset.npz"
    assert problem.model.sha256 == packaged.record.inputs["model"]
    assert problem.dataset.sha256 == packaged.record.inputs["dataset"]
    assert sha256_file(problem.model.path) == packaged.record.inputs["model"]
    assert sha256_file(problem.dataset.path) == packaged.record.inputs["dataset"]
    assert problem.task is not None and problem.task.value == "regression"
    # Everything but the problem's file references is the stored definition.
    rebuilt = experiment.model_dump(mode="json")
    stored = packaged.record.experiment
    assert {k: v for k, v in rebuilt.items() if k != "problem"} == {
        k: v for k, v in stored.items() if k != "problem"
    }


def test_requirements_pin_what_deploybench_needs_and_the_lock_holds_everything(
    packaged: Packaged,
) -> None:
    packages = packaged.record.environment["packages"]
    lines = (packaged.folder / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if not line.startswith("#"))
    for name in ("onnxruntime", "onnx", "numpy", "pydantic", "typer", "sqlalchemy"):
        assert pins[name] == packages[name], name
    for tool in ("pytest", "pytest-timeout", "mypy", "ruff", "deploybench", "pip", "torch"):
        assert tool not in pins, tool
    lock = (packaged.folder / "requirements.lock").read_text().splitlines()
    locked = [line for line in lock if not line.startswith("#")]
    assert len(locked) == len(packages) - 1  # all but deploybench itself
    assert "deploybench==" not in "\n".join(locked)
    assert f"pytest=={packages['pytest']}" in locked  # the lock is the whole environment


def test_source_pyproject_declares_the_script_and_every_entry_point(packaged: Packaged) -> None:
    pyproject = tomllib.loads((packaged.folder / "deploybench-src" / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["name"] == "deploybench"
    assert project["dependencies"] == []
    assert project["scripts"]["deploybench"] == "deploybench.cli.app:main"
    for entry in metadata.distribution("deploybench").entry_points:
        if entry.group == "console_scripts":
            assert project["scripts"][entry.name] == entry.value
        else:
            assert project["entry-points"][entry.group][entry.name] == entry.value
    data = pyproject["tool"]["setuptools"]["package-data"]["deploybench"]
    assert set(data) == {"py.typed", "store/migrations/script.py.mako"}


def test_snapshot_record_readme_and_scripts(packaged: Packaged) -> None:
    folder, record = packaged.folder, packaged.record
    environment = json.loads((folder / "environment.json").read_text())
    assert environment == record.environment
    assert RunRecord.model_validate_json((folder / "run.json").read_text()) == record
    readme = (folder / "README.md").read_text()
    for text in (record.id, "bash run.sh", "docker build -t repro .", "median latency", "R²"):
        assert text in readme
    assert "semantic preservation" in readme and "verdict" in readme
    dockerfile = (folder / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert 'CMD ["deploybench", "run", "experiment.yaml", "--discard"]' in dockerfile
    run_sh = (folder / "run.sh").read_text()
    assert "set -euo pipefail" in run_sh
    assert "deploybench run experiment.yaml --json --discard > rerun.json" in run_sh
    subprocess.run(["bash", "-n", str(folder / "run.sh")], check=True)


def test_run_sh_comparison_line(packaged: Packaged, tmp_path: Path) -> None:
    """The inline comparison reads run.json (indented) and rerun.json (--json line)."""
    run_sh = (packaged.folder / "run.sh").read_text()
    script = run_sh.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    (tmp_path / "run.json").write_text(packaged.record.model_dump_json(indent=2))
    (tmp_path / "rerun.json").write_text(packaged.record.model_dump_json() + "\n")
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert "(ratio 1.00x)" in out and "inputs identical" in out


def test_refuses_to_overwrite_and_missing_folders(packaged: Packaged, tmp_path: Path) -> None:
    existing = tmp_path / "taken.zip"
    existing.write_text("keep me")
    with pytest.raises(PackageError, match=r"taken\.zip"):
        write_package(packaged.store, packaged.record.id, existing)
    assert existing.read_text() == "keep me"
    with pytest.raises(UserError, match="does not exist"):
        write_package(packaged.store, packaged.record.id, tmp_path / "nope" / "p.zip")


def test_unknown_run_is_a_user_error(packaged: Packaged, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no run"):
        write_package(packaged.store, "20000101T000000-000000000000", tmp_path / "p.zip")
    assert list(tmp_path.iterdir()) == []


def test_failure_leaves_no_partial_file(
    packaged: Packaged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_zip = package_module._zip

    def zip_then_fail(stage: Path, path: Path, run_id: str, when: datetime) -> None:
        real_zip(stage, path, run_id, when)  # the partial file exists, then the disk fills
        raise OSError("disk full")

    monkeypatch.setattr(package_module, "_zip", zip_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_package(packaged.store, packaged.record.id, tmp_path / "p.zip")
    assert list(tmp_path.iterdir()) == []


def test_prefix_id_works_and_output_is_a_new_file(packaged: Packaged, tmp_path: Path) -> None:
    path = write_package(packaged.store, packaged.record.id[:18], tmp_path / "again.zip")
    assert path == tmp_path / "again.zip"
    assert [p.name for p in tmp_path.iterdir()] == ["again.zip"]  # no temp file left


# -- the closure, on hand-made requirement sets ----------------------------------------------

_ENV = {"python_version": "3.11", "sys_platform": "linux"}


def _closure(roots: list[str], graph: dict[str, list[str]]) -> dict[str, SpecifierSet]:
    return dependency_closure(roots, graph.get, _ENV)


def test_closure_follows_dependencies_and_merges_specifiers() -> None:
    graph = {"app": ["lib>=1", "Other_Lib"], "lib": ["base<3"], "other-lib": ["lib<2"]}
    found = _closure(["app"], graph)
    assert set(found) == {"app", "lib", "other-lib", "base"}
    assert found["lib"] == SpecifierSet(">=1,<2")


def test_closure_evaluates_markers() -> None:
    graph = {
        "app": [
            'old; python_version < "3.10"',
            'new; python_version >= "3.11"',
            'win; sys_platform == "win32"',
        ]
    }
    assert set(_closure(["app"], graph)) == {"app", "new"}
    assert set(_closure(['app; python_version < "3"'], graph)) == set()
    found = dependency_closure(["app"], graph.get, {"python_version": "3.9"})
    assert "old" in found and "new" not in found


def test_closure_follows_only_the_requested_extras() -> None:
    graph = {
        "app": ['gpu-rt; extra == "gpu"', 'pytest; extra == "dev"', "core"],
        "gpu-rt": ['symbolic; extra == "sym"', "driver"],
        "core": ["app[GPU]"],  # an extra named by a dependency, spelled differently
    }
    assert set(_closure(["app"], {**graph, "core": []})) == {"app", "core"}
    assert set(_closure(["app[gpu]"], graph)) == {"app", "core", "gpu-rt", "driver"}
    assert set(_closure(["core"], graph)) == {"core", "app", "gpu-rt", "driver"}


def test_closure_terminates_on_cycles_and_keeps_unknown_distributions() -> None:
    graph = {"a": ["b"], "b": ["c", "a[x]"], "c": ["a"], "missing-parent": ["ghost>=2"]}
    assert set(_closure(["a"], graph)) == {"a", "b", "c"}
    found = _closure(["missing-parent"], graph)
    assert found["ghost"] == SpecifierSet(">=2")


def test_pins_prefer_the_lock_then_the_installed_version_then_the_specifier() -> None:
    closure = {
        "numpy": SpecifierSet(">=1"),
        "typing-extensions": SpecifierSet(),
        "installed-only": SpecifierSet(),
        "ghost": SpecifierSet(">=2"),
        "deploybench": SpecifierSet(),
    }
    lock = {"numpy": "2.0.1", "typing_extensions": "4.12.0", "unused": "1"}
    versions = {"installed-only": "0.3"}
    assert pinned_requirements(closure, lock, version_of=versions.get) == [
        "ghost>=2",
        "installed-only==0.3",
        "numpy==2.0.1",
        "typing-extensions==4.12.0",
    ]
    assert lock_lines({"Zeta": "1", "alpha": "2", "deploybench": "0.1"}) == [
        "alpha==2",
        "Zeta==1",
    ]


# -- round trip -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_round_trip_in_a_fresh_virtual_environment(packaged: Packaged, tmp_path: Path) -> None:
    """Install the package's requirements and deploybench source into a new venv, run the
    experiment again there, and get a record with the same inputs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    started = time.monotonic()
    pip = [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check"]
    install = subprocess.run(
        [*pip, "-r", "requirements.txt", "./deploybench-src"],
        cwd=packaged.folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    print(f"installation took {time.monotonic() - started:.0f} s")
    env = {**os.environ, "DEPLOYBENCH_HOME": str(tmp_path / "home")}
    env.pop("DEPLOYBENCH_DB_URL", None)
    rerun = subprocess.run(
        [str(venv / "bin" / "deploybench"), "run", "experiment.yaml", "--json", "--discard"],
        cwd=packaged.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    record = RunRecord.model_validate_json(rerun.stdout.strip().splitlines()[-1])
    assert record.status == "succeeded"
    assert record.inputs == packaged.record.inputs
    assert record.id != packaged.record.id
