"""Plugin registry: toolchains, targets and probes declared through entry points."""

from deploybench.plugins.availability import Availability
from deploybench.plugins.registry import (
    PluginKind,
    PluginStatus,
    known_names,
    list_plugins,
    load_plugin,
    registered,
)

__all__ = [
    "Availability",
    "PluginKind",
    "PluginStatus",
    "known_names",
    "list_plugins",
    "load_plugin",
    "registered",
]
