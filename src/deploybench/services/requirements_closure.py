"""What installing deploybench again needs: the dependency closure of its requirements
pinned to the versions a run used, and a buildable copy of its own source.

Used by :mod:`deploybench.services.package`; :func:`dependency_closure` is pure so it can be
tested on hand-made requirement sets.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

import deploybench

RequiresOf = Callable[[str], Sequence[str] | None]
"""Requirement strings (Requires-Dist) of a distribution; None when it is not installed."""

# Files of the deploybench package that an installation needs (code and package data).
_SOURCE_PATTERNS = ("*.py", "py.typed", "*.mako")
# Entry point groups that pyproject.toml declares in their own tables (PEP 621).
_SCRIPT_TABLES = {"console_scripts": "scripts", "gui_scripts": "gui-scripts"}


def dependency_closure(
    roots: Iterable[str],
    requires_of: RequiresOf,
    environment: Mapping[str, str] | None = None,
) -> dict[str, SpecifierSet]:
    """Every distribution reachable from ``roots`` (requirement strings), canonical name ->
    the intersection of the specifiers that asked for it.

    Markers are evaluated against ``environment`` (default: this interpreter); extras are
    followed (``a[x]`` adds the requirements of ``a`` whose marker holds for ``extra ==
    "x"``). Each (distribution, extra) is expanded once, so cycles terminate. A distribution
    that ``requires_of`` does not know is kept but not expanded.
    """
    env = {key: str(value) for key, value in default_environment().items()}
    env.update(environment or {})
    found: dict[str, SpecifierSet] = {}
    expanded: set[tuple[str, str]] = set()
    queue = deque(r for r in map(Requirement, roots) if _applies(r, env, ""))
    while queue:
        requirement = queue.popleft()
        name = canonicalize_name(requirement.name)
        found[name] = found.get(name, SpecifierSet()) & requirement.specifier
        # "" stands for the distribution's unconditional requirements.
        for extra in ("", *sorted(canonicalize_name(e) for e in requirement.extras)):
            if (name, extra) in expanded:
                continue
            expanded.add((name, extra))
            for text in requires_of(name) or ():
                dependency = Requirement(text)
                if _applies(dependency, env, extra):
                    queue.append(dependency)
    return found


def _applies(requirement: Requirement, env: Mapping[str, str], extra: str) -> bool:
    if requirement.marker is None:
        return True
    return requirement.marker.evaluate({**env, "extra": extra})


def installed_requires(name: str) -> list[str] | None:
    """The installed distribution's requirement strings (None when it is not installed)."""
    try:
        return metadata.distribution(name).requires or []
    except metadata.PackageNotFoundError:
        return None


def installed_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def deploybench_roots(experiment: Mapping[str, Any]) -> list[str]:
    """deploybench, with the extra named like the toolchain when it declares one, plus the
    distributions of any third-party plugin the experiment uses."""
    declared = metadata.metadata("deploybench").get_all("Provides-Extra") or []
    extra = canonicalize_name(experiment["toolchain"]["name"])
    extras = {canonicalize_name(e) for e in declared}
    roots = [f"deploybench[{extra}]" if extra in extras else "deploybench"]
    wanted = {
        "deploybench.toolchains": {experiment["toolchain"]["name"]},
        "deploybench.targets": {experiment["target"]["name"]},
        "deploybench.probes": set(experiment.get("measurement", {}).get("probes") or ()),
    }
    for group, names in wanted.items():
        for entry in metadata.entry_points(group=group):
            dist = entry.dist.name if entry.dist is not None else "deploybench"
            if entry.name in names and canonicalize_name(dist) != "deploybench":
                roots.append(dist)
    return list(dict.fromkeys(roots))


def pinned_requirements(
    closure: Mapping[str, SpecifierSet],
    lock: Mapping[str, str],
    exclude: Iterable[str] = ("deploybench",),
    version_of: Callable[[str], str | None] = installed_version,
) -> list[str]:
    """One ``name==version`` line per distribution of ``closure``: the version in ``lock``
    (what the run used), else the installed one, else the requested specifier."""
    versions: dict[str, str] = {canonicalize_name(n): version for n, version in lock.items()}
    skipped = {canonicalize_name(name) for name in exclude}
    lines: list[str] = []
    for name in sorted(set(closure) - skipped):
        version = versions.get(name) or version_of(name)
        lines.append(f"{name}=={version}" if version else f"{name}{closure[name]}")
    return lines


def lock_lines(packages: Mapping[str, str], exclude: Iterable[str] = ("deploybench",)) -> list[str]:
    """``name==version`` for every recorded distribution except ``exclude``."""
    skipped = {canonicalize_name(name) for name in exclude}
    return [
        f"{name}=={packages[name]}"
        for name in sorted(packages, key=canonicalize_name)
        if canonicalize_name(name) not in skipped
    ]


def copy_source(dest: Path) -> list[str]:
    """Copy the installed deploybench package into ``dest/src/deploybench``; return the
    package data files (not ``*.py``) relative to the package, for pyproject.toml."""
    package = Path(deploybench.__file__).parent
    target = dest / "src" / "deploybench"
    data: list[str] = []
    for pattern in _SOURCE_PATTERNS:
        for path in sorted(package.rglob(pattern)):
            relative = path.relative_to(package)
            if "__pycache__" in relative.parts or not path.is_file():
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)
            if path.suffix != ".py":
                data.append(relative.as_posix())
    return sorted(data)


def _toml(value: str | list[str]) -> str:
    # A JSON string is a valid TOML basic string; a JSON array of strings a TOML array.
    return json.dumps(value)


def source_pyproject(
    version: str, entry_points: Iterable[metadata.EntryPoint], package_data: list[str]
) -> str:
    """pyproject.toml of the copied source: no dependencies (requirements.txt pins them),
    the console script and every entry point of the installed distribution."""
    tables: dict[str, dict[str, str]] = {"scripts": {"deploybench": "deploybench.cli.app:main"}}
    for entry in entry_points:
        table = _SCRIPT_TABLES.get(entry.group, f"entry-points.{_toml(entry.group)}")
        tables.setdefault(table, {})[entry.name] = entry.value
    lines = [
        "[build-system]",
        # 61 is the first setuptools that reads [project]; Python 3.11 venvs ship 65.
        'requires = ["setuptools>=61"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        'name = "deploybench"',
        f"version = {_toml(version)}",
        'description = "deploybench, copied from the run\'s installation to run it again."',
        'requires-python = ">=3.11"',
        "dependencies = []",
    ]
    for table, entries in tables.items():
        lines += ["", f"[project.{table}]"]
        lines += [f"{_toml(name)} = {_toml(value)}" for name, value in sorted(entries.items())]
    lines += [
        "",
        "[tool.setuptools.packages.find]",
        'where = ["src"]',
        "",
        "[tool.setuptools.package-data]",
        f"deploybench = {_toml(package_data)}",
    ]
    return "\n".join(lines) + "\n"


def write_install_files(
    folder: Path,
    experiment: Mapping[str, Any],
    packages: Mapping[str, str],
    python: str,
    run_id: str,
) -> None:
    """Write ``requirements.txt`` (the closure of deploybench for this experiment, pinned to
    ``packages``), ``requirements.lock`` (all of ``packages``) and ``deploybench-src/``."""
    python_minor = ".".join(python.split(".")[:2])
    # Markers are judged for the run's Python, which the package recreates.
    needed = dependency_closure(
        deploybench_roots(experiment), installed_requires, {"python_version": python_minor}
    )
    header = f"# deploybench run {run_id}, Python {python}\n"
    requirements = pinned_requirements(needed, packages)
    (folder / "requirements.txt").write_text(header + "\n".join(requirements) + "\n")
    (folder / "requirements.lock").write_text(header + "\n".join(lock_lines(packages)) + "\n")
    source = folder / "deploybench-src"
    data = copy_source(source)
    entry_points = metadata.distribution("deploybench").entry_points
    pyproject = source_pyproject(deploybench.__version__, entry_points, data)
    (source / "pyproject.toml").write_text(pyproject)
