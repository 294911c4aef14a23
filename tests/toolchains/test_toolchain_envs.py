"""Toolchain environments: cache key, atomic build, lock, failures, version resolution."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from deploybench.errors import UserError
from deploybench.runner import prepare_experiment
from deploybench.testing.experiments import make_experiment
from deploybench.toolchains import guides
from deploybench.toolchains.envs import (
    EnvironmentBuildError,
    ToolchainEnvironment,
    ensure_environment,
    environment_key,
    envs_root,
    list_environments,
    satisfies,
)
from deploybench.toolchains.envs import environments as envs_mod
from deploybench.toolchains.envs import versions as versions_mod
from deploybench.toolchains.onnxruntime.toolchain import OnnxRuntimeToolchain

REPO = Path(__file__).resolve().parents[2]
FAKE_VERSIONS = ("1.32.0", "1.31.0", "1.22.1", "1.22.0")


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture()
def fake_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versions_mod, "index_versions", lambda distribution: FAKE_VERSIONS)


def test_key_is_the_canonical_requirement_set() -> None:
    assert environment_key(["b==1", "a==2"]) == environment_key([" a==2", "b==1", "b==1"])
    assert environment_key(["a==2"]) != environment_key(["a==3"])
    assert len(environment_key(["a==2"])) == 64


def test_default_requirements_pin_the_main_distribution() -> None:
    assert OnnxRuntimeToolchain.requirements("1.22.0") == ["onnxruntime==1.22.0"]


def test_satisfies() -> None:
    assert satisfies("1.32.0", ">=1.30")
    assert not satisfies("1.32.0", "==1.22.0")
    assert not satisfies(None, "==1.22.0")


def test_resolve_picks_the_newest_match(fake_index: None) -> None:
    assert versions_mod.resolve_version(OnnxRuntimeToolchain, "~=1.22.0") == "1.22.1"
    assert versions_mod.resolve_version(OnnxRuntimeToolchain, "<1.32") == "1.31.0"


def test_unknown_version_is_refused_with_the_available_ones(fake_index: None) -> None:
    with pytest.raises(UserError) as caught:
        versions_mod.resolve_version(OnnxRuntimeToolchain, "==0.0.1")
    assert "==0.0.1" in str(caught.value)
    assert "1.32.0, 1.31.0, 1.22.1, 1.22.0" in str(caught.value)


def test_unknown_version_stops_an_experiment_before_anything_runs(
    home: Path, fake_index: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_build(*args: Any, **kwargs: Any) -> ToolchainEnvironment:
        raise AssertionError("nothing may be built")

    monkeypatch.setattr(versions_mod, "ensure_environment", no_build)
    experiment = make_experiment()
    experiment = experiment.model_copy(
        update={"toolchain": experiment.toolchain.model_copy(update={"version": "==0.0.1"})}
    )
    with pytest.raises(UserError, match=r"available versions: 1\.32\.0"):
        prepare_experiment(experiment)


def test_real_index_lists_onnxruntime_versions() -> None:
    versions_mod.index_versions.cache_clear()
    listed = versions_mod.index_versions("onnxruntime")
    assert "1.22.0" in listed and OnnxRuntimeToolchain.tool_version() in listed


def test_failed_build_shows_the_installer_output_and_leaves_nothing(home: Path) -> None:
    missing = str(home / "no-such-project")
    started = time.monotonic()
    with pytest.raises(EnvironmentBuildError) as caught:
        ensure_environment([missing], toolchain="onnxruntime")
    assert time.monotonic() - started < 60
    message = str(caught.value)
    assert "installer output" in message
    assert "no-such-project" in caught.value.output  # pip's own words about the requirement
    leftovers = [p.name for p in envs_root().iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
    assert list_environments() == []


def _fake_build(calls: list[str], delay: float = 0.0) -> Any:
    def build(
        folder: Path,
        final: Path,
        key: str,
        requirements: list[str],
        toolchain: str | None,
        log: Any,
        share_main: bool = False,
    ) -> ToolchainEnvironment:
        calls.append(key)
        time.sleep(delay)
        (folder / "bin").mkdir(exist_ok=True)
        (folder / "bin" / "python").write_text("")
        environment = ToolchainEnvironment(
            key=key,
            path=final,
            toolchain=toolchain,
            requirements=requirements,
            python_version="cpython-3.11",
            versions={"fake": "1.0"},
        )
        (folder / envs_mod.META_NAME).write_text(environment.model_dump_json(exclude={"path"}))
        return environment

    return build


def test_concurrent_callers_build_once_and_share_the_result(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(envs_mod, "_build", _fake_build(calls, delay=0.3))
    results: list[ToolchainEnvironment] = []

    def worker() -> None:
        results.append(ensure_environment(["fake==1.0"], toolchain="fake"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len({r.path for r in results}) == 1 and len(results) == 4
    listed = list_environments()
    assert [(e.toolchain, e.state, e.versions) for e in listed] == [
        ("fake", "ready", {"fake": "1.0"})
    ]
    assert listed[0].path == envs_root() / environment_key(["fake==1.0"])
    assert not [p for p in envs_root().iterdir() if p.name.startswith(".build-")]


def test_interrupted_build_is_not_cached(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> ToolchainEnvironment:
        raise KeyboardInterrupt

    monkeypatch.setattr(envs_mod, "_build", broken)
    with pytest.raises(KeyboardInterrupt):
        ensure_environment(["fake==1.0"])
    assert list_environments() == []


def test_guides_in_docs_are_in_sync() -> None:
    pages = guides.rendered_guides()
    assert {"onnxruntime.md", "openvino.md", "tvm.md"} <= set(pages)
    for filename, text in pages.items():
        doc = REPO / "docs" / "toolchains" / filename
        assert doc.is_file() and doc.read_text(encoding="utf-8") == text, (
            f"docs/toolchains/{filename} is stale: run `make docs`"
        )


def test_an_environment_sharing_the_main_packages_installs_only_what_is_missing(
    home: Path,
) -> None:
    from deploybench.toolchains.envs.environments import ensure_environment, environment_key

    assert environment_key(["packaging"]) != environment_key(["packaging"], share_main=True)
    environment = ensure_environment(["packaging"], toolchain="test", share_main=True)
    assert environment.key == environment_key(["packaging"], share_main=True)
    site = next((environment.path / "lib").glob("python3*/site-packages"))
    # The main environment's packaging satisfies the pin: nothing was installed ...
    assert not list(site.glob("packaging*"))
    # ... and the environment still imports it, from the main environment.
    import subprocess

    done = subprocess.run(
        [str(environment.python), "-c", "import packaging, sys; print(packaging.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(environment.path) not in done.stdout
