"""Toolchain environments: one virtualenv per pinned requirement set, built on demand.

Layout under ``$DEPLOYBENCH_HOME/envs/``::

    <sha256>/            a ready environment (bin/python, lib/..., env.json)
    <sha256>.lock        flock held while the environment is built or checked
    .build-<sha256>-*/   an environment being built (renamed to <sha256>/ when done)

The key is the sha256 of the sorted requirement set plus the interpreter's version, because
binary wheels depend on it. An environment holds only the pinned packages and their
dependencies; a ``deploybench-main.pth`` file appends deploybench's own import root and the
main environment's site-packages *after* its own, so the pinned versions win while
deploybench, numpy, pydantic ... come from the main environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deploybench.errors import DeploybenchError
from deploybench.paths import data_home

META_NAME = "env.json"
PTH_NAME = "deploybench-main.pth"
BUILD_PREFIX = ".build-"

Log = Callable[[str], None]


class EnvironmentBuildError(DeploybenchError):
    """The installer failed; the message carries its output."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(f"{message}\n--- installer output ---\n{output.rstrip()}")
        self.output = output


class ToolchainEnvironment(BaseModel):
    """A ready (or listed) toolchain environment."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="sha256 of the requirement set and the Python version.")
    path: Path
    toolchain: str | None = None
    requirements: list[str]
    python_version: str
    versions: dict[str, str] = Field(
        default_factory=dict, description="Installed distribution -> version, read after install."
    )
    created_at: str | None = None
    state: str = Field(default="ready", description="ready, building or broken.")

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.path / "bin" / "python"


def envs_root() -> Path:
    """Folder holding every toolchain environment."""
    root = data_home() / "envs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _python_tag() -> str:
    return f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}"


def normalize_requirements(requirements: list[str]) -> list[str]:
    """Sorted, stripped, de-duplicated requirement strings (the canonical set)."""
    return sorted({r.strip() for r in requirements if r.strip()})


def environment_key(requirements: list[str], share_main: bool = False) -> str:
    """sha256 of the canonical requirement set plus the interpreter it is built for (and
    whether it reuses the main environment's packages)."""
    data: dict[str, Any] = {
        "python": _python_tag(),
        "requirements": normalize_requirements(requirements),
    }
    if share_main:  # absent otherwise, so the keys of existing environments do not change
        data["share_main"] = True
    payload = json.dumps(data, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main_import_roots() -> list[str]:
    """What an environment appends to its ``sys.path``: deploybench's import root (the
    ``src`` folder of an editable install, site-packages for a wheel) and the main
    environment's site-packages."""
    import deploybench

    roots = [str(Path(deploybench.__file__).resolve().parent.parent)]
    for key in ("purelib", "platlib"):
        roots.append(sysconfig.get_paths()[key])
    return list(dict.fromkeys(roots))


def _site_packages(env: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return env / "lib" / version / "site-packages"


def _run(argv: list[str], log: Log | None) -> tuple[int, str]:
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if log is not None:
            log(line.rstrip())
    return process.wait(), "".join(lines)


def _installed_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = metadata.version(n)\n"
        "    except metadata.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {}
    result: dict[str, str] = json.loads(done.stdout)
    return result


def _requirement_names(requirements: list[str]) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for item in requirements:
        with contextlib.suppress(InvalidRequirement):
            names.append(Requirement(item).name)
    return names


def read_environment(path: Path) -> ToolchainEnvironment | None:
    """The environment described by ``path/env.json``; None when missing or unreadable."""
    try:
        data = json.loads((path / META_NAME).read_text(encoding="utf-8"))
        return ToolchainEnvironment.model_validate({**data, "path": path})
    except (OSError, ValueError):
        return None


def ensure_environment(
    requirements: list[str],
    toolchain: str | None = None,
    log: Log | None = None,
    share_main: bool = False,
) -> ToolchainEnvironment:
    """The ready environment for ``requirements``, building it first when needed.

    Concurrent callers wait on a lock; the build happens in a temporary folder renamed into
    place at the end, so a failed or interrupted build leaves no cache entry.

    ``share_main``: let pip see the main environment's packages while it resolves, so a
    dependency the main environment already satisfies (torch: 750 MB) is not installed again;
    only missing or conflicting packages land in the environment (and shadow the main ones).
    Without it every dependency is installed into the environment.
    """
    wanted = normalize_requirements(requirements)
    if not wanted:
        raise DeploybenchError("a toolchain environment needs at least one requirement")
    key = environment_key(wanted, share_main)
    root = envs_root()
    final = root / key
    with _locked(root / f"{key}.lock"):
        existing = read_environment(final)
        if existing is not None and existing.python.exists():
            return existing
        if final.exists():  # a broken leftover (no metadata): rebuild it
            shutil.rmtree(final, ignore_errors=True)
        building = Path(tempfile.mkdtemp(prefix=f"{BUILD_PREFIX}{key[:16]}-", dir=root))
        try:
            environment = _build(building, final, key, wanted, toolchain, log, share_main)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        os.rename(building, final)
        return environment


def _build(
    folder: Path,
    final: Path,
    key: str,
    requirements: list[str],
    toolchain: str | None,
    log: Log | None,
    share_main: bool = False,
) -> ToolchainEnvironment:
    code, output = _run([sys.executable, "-m", "venv", "--without-pip", str(folder)], log)
    if code != 0:
        raise EnvironmentBuildError("creating the virtual environment failed", output)
    python = folder / "bin" / "python"
    pth = _site_packages(folder) / PTH_NAME
    roots = "".join(f"{root}\n" for root in main_import_roots())
    if share_main:
        # Before the install: pip sees the main packages as installed and keeps those that
        # satisfy the pins ("not uninstalling ... outside environment" for the others).
        pth.write_text(roots, encoding="utf-8")
    # The main environment's pip installs into the new one (--python): no ensurepip needed.
    argv = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--disable-pip-version-check",
        "--no-input",
        *requirements,
    ]
    code, output = _run(argv, log)
    if code != 0:
        raise EnvironmentBuildError(
            f"installing {' '.join(requirements)} into a toolchain environment failed "
            f"(exit {code})",
            output,
        )
    # Otherwise written after the install, so that pip resolves every dependency into the
    # environment.
    pth.write_text(roots, encoding="utf-8")
    versions = _installed_versions(python, _requirement_names(requirements))
    environment = ToolchainEnvironment(
        key=key,
        path=final,
        toolchain=toolchain,
        requirements=requirements,
        python_version=_python_tag(),
        versions=versions,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    data: dict[str, Any] = environment.model_dump(mode="json", exclude={"path"})
    (folder / META_NAME).write_text(json.dumps(data, indent=2), encoding="utf-8")
    return environment


def list_environments() -> list[ToolchainEnvironment]:
    """Every cached environment: ready ones, broken ones and builds in progress."""
    root = envs_root()
    found: list[ToolchainEnvironment] = []
    for path in sorted(root.iterdir()):
        if not path.is_dir():
            continue
        if path.name.startswith(BUILD_PREFIX):
            found.append(
                ToolchainEnvironment(
                    key=path.name[len(BUILD_PREFIX) :],
                    path=path,
                    requirements=[],
                    python_version=_python_tag(),
                    state="building",
                )
            )
            continue
        environment = read_environment(path)
        if environment is None:
            environment = ToolchainEnvironment(
                key=path.name, path=path, requirements=[], python_version="?", state="broken"
            )
        elif not environment.python.exists():
            environment = environment.model_copy(update={"state": "broken"})
        found.append(environment)
    return found
