"""The one error hierarchy of deploybench.

User errors (bad input the user can fix) derive from :class:`UserError`; the CLI maps them to
exit code 2. :class:`RunError` means the experiment was valid but its execution failed (exit 1).
Every message names what is wrong and how to fix it.
"""

from __future__ import annotations


class DeploybenchError(Exception):
    """Base class of every error raised on purpose by deploybench."""


class UserError(DeploybenchError):
    """Something the user gave us is wrong; the message says what and how to fix it."""


class SpecError(UserError):
    """An experiment definition (YAML or API payload) is invalid."""


class PluginError(UserError):
    """A plugin is unknown, unavailable, or its configuration is invalid."""


class ModelError(UserError):
    """A model file is missing, of an unknown format, or corrupt."""


class DatasetError(UserError):
    """A dataset is missing, corrupt, or does not match the model's inputs."""


class CompatibilityError(UserError):
    """The toolchain or target cannot handle this problem (found before anything runs)."""


class RunError(DeploybenchError):
    """The experiment was valid but running it failed (crash, timeout, runtime error)."""


__all__ = [
    "CompatibilityError",
    "DatasetError",
    "DeploybenchError",
    "ModelError",
    "PluginError",
    "RunError",
    "SpecError",
    "UserError",
]
