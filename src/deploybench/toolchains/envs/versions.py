"""Which versions of a toolchain exist on the package index, and which one a constraint picks."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from deploybench.errors import PluginError, UserError
from deploybench.toolchains.base import Toolchain
from deploybench.toolchains.envs.environments import (
    Log,
    ToolchainEnvironment,
    ensure_environment,
    environment_key,
    envs_root,
    read_environment,
)


@functools.lru_cache(maxsize=64)
def index_versions(distribution: str) -> tuple[str, ...]:
    """Every release of ``distribution`` on the configured index, newest first (pip's view:
    only versions with a file installable here)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "index",
            "versions",
            distribution,
            "--json",
            "--disable-pip-version-check",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise PluginError(
            f"cannot list the versions of '{distribution}' on the package index: "
            f"{detail[-1] if detail else f'pip exited with {done.returncode}'}"
        )
    versions: list[str] = json.loads(done.stdout).get("versions", [])
    return tuple(versions)


def _parse(constraint: str) -> SpecifierSet:
    try:
        return SpecifierSet(constraint)
    except InvalidSpecifier:
        raise UserError(
            f"toolchain.version '{constraint}' is not a PEP 440 constraint (e.g. '==1.22.0')"
        ) from None


def satisfies(version: str | None, constraint: str) -> bool:
    """Whether ``version`` is inside ``constraint`` (False for None or a malformed version)."""
    if version is None:
        return False
    try:
        return Version(version) in _parse(constraint)
    except InvalidVersion:
        return False


def _exact(constraint: str) -> str | None:
    specs = list(_parse(constraint))
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return specs[0].version
    return None


def _cached(toolchain: type[Toolchain], version: str) -> ToolchainEnvironment | None:
    key = environment_key(toolchain.requirements(version))
    environment = read_environment(envs_root() / key)
    return environment if environment is not None and environment.python.exists() else None


def resolve_version(toolchain: type[Toolchain], constraint: str) -> str:
    """The newest version on the index matching ``constraint``; a :class:`UserError` naming
    the available versions when none does."""
    distribution = toolchain.distribution
    if distribution is None:
        raise PluginError(
            f"toolchain '{toolchain.name}' cannot run in its own environment (it names no "
            "package distribution); install the wanted version or change toolchain.version"
        )
    available = index_versions(distribution)
    specifier = _parse(constraint)
    matching = [v for v in available if _valid(v) and Version(v) in specifier]
    if not matching:
        shown = ", ".join(available[:30]) + (" ..." if len(available) > 30 else "")
        installed = toolchain.tool_version() or "not installed"
        raise UserError(
            f"toolchain '{toolchain.name}': {distribution} {installed} here does not satisfy "
            f"'{constraint}', and no release on the package index matches it; available "
            f"versions: {shown or 'none'}"
        )
    return max(matching, key=Version)


def _valid(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def toolchain_environment(
    toolchain: type[Toolchain], constraint: str, log: Log | None = None
) -> ToolchainEnvironment:
    """The environment running ``toolchain`` at the newest version matching ``constraint``,
    built when not cached. An exact pin already cached is used without asking the index."""
    exact = _exact(constraint)
    if exact is not None:
        cached = _cached(toolchain, exact)
        if cached is not None:
            return cached
    version = resolve_version(toolchain, constraint)
    return ensure_environment(toolchain.requirements(version), toolchain=toolchain.name, log=log)
