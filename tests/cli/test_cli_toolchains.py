"""`deploybench toolchains`: list with environments, prepare (ok, build failure, unknown
version), show (guide + config schema)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from deploybench.cli.app import app
from deploybench.cli.common import EXIT_RUN_FAILED, EXIT_USER_ERROR
from deploybench.toolchains.envs import EnvironmentBuildError, ToolchainEnvironment
from deploybench.toolchains.envs import environments as envs_mod
from deploybench.toolchains.envs import versions as versions_mod

FAKE_VERSIONS = ("1.32.0", "1.22.0")


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path))
    monkeypatch.setattr(versions_mod, "index_versions", lambda distribution: FAKE_VERSIONS)
    return tmp_path


def _fake_build(calls: list[list[str]]) -> Any:
    def build(
        folder: Path,
        final: Path,
        key: str,
        requirements: list[str],
        toolchain: str | None,
        log: Any,
        share_main: bool = False,
    ) -> ToolchainEnvironment:
        calls.append(requirements)
        log("Collecting onnxruntime")
        (folder / "bin").mkdir()
        (folder / "bin" / "python").write_text("")
        version = requirements[0].partition("==")[2]
        environment = ToolchainEnvironment(
            key=key,
            path=final,
            toolchain=toolchain,
            requirements=requirements,
            python_version="cpython-3.11",
            versions={"onnxruntime": version},
        )
        (folder / envs_mod.META_NAME).write_text(environment.model_dump_json(exclude={"path"}))
        return environment

    return build


def test_list_shows_installed_versions_and_cached_environments(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _invoke("toolchains")
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.stdout and "installed version" in result.stdout
    calls: list[list[str]] = []
    monkeypatch.setattr(envs_mod, "_build", _fake_build(calls))
    assert _invoke("toolchains", "prepare", "onnxruntime==1.22.0").exit_code == 0
    (home / "envs" / ".build-0123456789abcdef-x").mkdir()
    result = _invoke("toolchains")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "onnxruntime" in line)
    assert "1.22.0 (ready)" in row
    assert "(building)" in result.stdout


def test_prepare_builds_once_then_reuses(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(envs_mod, "_build", _fake_build(calls))
    first = _invoke("toolchains", "prepare", "onnxruntime==1.22.0")
    assert first.exit_code == 0, first.output
    assert "ready" in first.stdout and "onnxruntime 1.22.0" in first.stdout
    second = _invoke("toolchains", "prepare", "onnxruntime==1.22.0")
    assert second.exit_code == 0
    assert calls == [["onnxruntime==1.22.0"]]


def test_prepare_constraint_and_bare_name_pick_the_newest_match(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(envs_mod, "_build", _fake_build(calls))
    assert _invoke("toolchains", "prepare", "onnxruntime<1.30").exit_code == 0
    assert _invoke("toolchains", "prepare", "onnxruntime").exit_code == 0
    assert calls == [["onnxruntime==1.22.0"], ["onnxruntime==1.32.0"]]


def test_prepare_failure_prints_the_installer_output(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: Any, **kwargs: Any) -> ToolchainEnvironment:
        raise EnvironmentBuildError("installing failed", "ERROR: No matching distribution xyz")

    monkeypatch.setattr(envs_mod, "_build", failing)
    result = _invoke("toolchains", "prepare", "onnxruntime==1.22.0")
    assert result.exit_code == EXIT_RUN_FAILED
    assert "ERROR: No matching distribution xyz" in result.stderr
    assert [p.name for p in (home / "envs").iterdir() if not p.name.endswith(".lock")] == []


def test_prepare_unknown_version_lists_available_ones(home: Path) -> None:
    result = _invoke("toolchains", "prepare", "onnxruntime==9.9.9")
    assert result.exit_code == EXIT_USER_ERROR
    assert "available versions: 1.32.0, 1.22.0" in result.stderr


def test_prepare_unknown_toolchain(home: Path) -> None:
    result = _invoke("toolchains", "prepare", "nosuch==1.0")
    assert result.exit_code == EXIT_USER_ERROR
    assert "unknown toolchain 'nosuch'" in result.stderr


def test_show_prints_guide_and_config_schema() -> None:
    result = _invoke("toolchains", "show", "openvino")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# OpenVINO toolchain")
    schema_text = result.stdout.split("## Configuration schema (toolchain.config)", 1)[1]
    schema = json.loads(schema_text)
    assert "precision" in schema["properties"]


def test_show_without_guide_still_prints_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    from deploybench.toolchains import guides

    monkeypatch.setattr(guides, "guide", lambda toolchain: None)
    result = _invoke("toolchains", "show", "onnxruntime")
    assert result.exit_code == 0, result.output
    assert "(no guide shipped)" in result.stdout
    assert "graph_optimization" in result.stdout


def test_show_unknown_toolchain() -> None:
    result = _invoke("toolchains", "show", "nosuch")
    assert result.exit_code == EXIT_USER_ERROR
