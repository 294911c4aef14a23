"""The plugin registry: entry-point groups, lazy loading, listing.

Built-in plugins are declared in deploybench's own ``pyproject.toml`` through the same entry
point groups as third-party ones. Nothing is imported until a plugin is asked for by name.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from deploybench.errors import PluginError
from deploybench.plugins.availability import Availability


class PluginKind(StrEnum):
    """The kinds of plugin, each with its own entry-point group."""

    TOOLCHAIN = "toolchain"
    TARGET = "target"
    PROBE = "probe"

    @property
    def group(self) -> str:
        """Entry-point group name, e.g. ``deploybench.toolchains``."""
        return f"deploybench.{self.value}s"


@dataclass(frozen=True)
class PluginStatus:
    """One row of ``deploybench plugins``."""

    kind: PluginKind
    name: str
    value: str
    distribution: str | None
    version: str | None
    tool_version: str | None
    availability: Availability


# Plugins registered in-process (tests, notebooks); they shadow entry points of the same name.
_OVERRIDES: dict[tuple[PluginKind, str], Any] = {}


@functools.lru_cache(maxsize=32)
def _group(group: str, path: tuple[str, ...]) -> tuple[EntryPoint, ...]:
    # Scanning every installed distribution's metadata takes milliseconds; a lab validates
    # thousands of submissions. Keyed by sys.path, so a newly added path is seen.
    return tuple(entry_points(group=group))


def _entry_points(kind: PluginKind) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in _group(kind.group, tuple(sys.path))}


def known_names(kind: PluginKind) -> list[str]:
    """Names of every plugin of this kind, installed or registered in-process."""
    names = set(_entry_points(kind))
    names.update(name for (k, name) in _OVERRIDES if k is kind)
    return sorted(names)


def load_plugin(kind: PluginKind, name: str) -> Any:
    """Import and return the plugin object (usually a class) registered under ``name``."""
    override = _OVERRIDES.get((kind, name))
    if override is not None:
        return override
    eps = _entry_points(kind)
    if name not in eps:
        known = known_names(kind)
        hint = difflib.get_close_matches(name, known, n=1)
        message = f"unknown {kind.value} '{name}'"
        if hint:
            message += f" (did you mean '{hint[0]}'?)"
        message += f"; known {kind.value}s: {', '.join(known) or 'none'}. "
        message += "Run `deploybench plugins` to list them with their availability."
        raise PluginError(message)
    try:
        return eps[name].load()
    except ImportError as exc:
        raise PluginError(
            f"{kind.value} '{name}' is installed but cannot be imported: {exc}"
        ) from exc


@contextlib.contextmanager
def registered(kind: PluginKind, name: str, plugin: Any) -> Iterator[None]:
    """Register ``plugin`` under ``name`` for the duration of a ``with`` block."""
    key = (kind, name)
    previous = _OVERRIDES.get(key)
    _OVERRIDES[key] = plugin
    try:
        yield
    finally:
        if previous is None:
            _OVERRIDES.pop(key, None)
        else:
            _OVERRIDES[key] = previous


def _status(
    kind: PluginKind, name: str, value: str, dist: str | None, version: str | None
) -> PluginStatus:
    tool_version: str | None = None
    try:
        plugin = load_plugin(kind, name)
        availability = plugin.availability()
        tool_version_fn = getattr(plugin, "tool_version", None)
        tool_version = tool_version_fn() if tool_version_fn else None
    except PluginError as exc:
        availability = Availability(available=False, reason=str(exc))
    return PluginStatus(kind, name, value, dist, version, tool_version, availability)


def list_plugins(kind: PluginKind | None = None) -> list[PluginStatus]:
    """Every plugin with its distribution, version and availability (imports plugin modules,
    which are cheap by contract, but never the runtimes behind them)."""
    kinds = [kind] if kind else list(PluginKind)
    rows: list[PluginStatus] = []
    for each in kinds:
        eps = _entry_points(each)
        for name in known_names(each):
            ep = eps.get(name)
            if (each, name) in _OVERRIDES or ep is None:
                rows.append(_status(each, name, "(registered in-process)", None, None))
                continue
            dist = ep.dist
            rows.append(
                _status(
                    each,
                    name,
                    ep.value,
                    dist.name if dist else None,
                    dist.version if dist else None,
                )
            )
    return rows
