"""Toolchain environments: a toolchain at another version runs in its own virtualenv."""

from deploybench.toolchains.envs.environments import (
    EnvironmentBuildError,
    ToolchainEnvironment,
    ensure_environment,
    environment_key,
    envs_root,
    list_environments,
)
from deploybench.toolchains.envs.versions import (
    index_versions,
    resolve_version,
    satisfies,
    toolchain_environment,
)

__all__ = [
    "EnvironmentBuildError",
    "ToolchainEnvironment",
    "ensure_environment",
    "environment_key",
    "envs_root",
    "index_versions",
    "list_environments",
    "resolve_version",
    "satisfies",
    "toolchain_environment",
]
