"""Value types shared by the zoo builders and the cache."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ZooArtifact:
    """A built (or cached) open model or dataset.

    Attributes:
        path: the ``model.onnx`` or ``dataset.npz`` file inside the cache.
        sha256: hex digest of that file, checked against the manifest when reused.
        manifest: the content of the entry's ``manifest.json`` (sha256, builder version,
            versions of the tools used, inputs/outputs or arrays, build-time metrics).
    """

    path: Path
    sha256: str
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Built:
    """What a builder returns: the file's bytes plus facts for the manifest."""

    data: bytes
    # Python modules whose versions influenced the bytes, e.g. ("numpy", "sklearn").
    tools: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)


def tool_versions(modules: tuple[str, ...]) -> dict[str, str]:
    """``{module: __version__}`` for already-importable modules, sorted by name.

    Recorded in manifests so a sha256 that changes across machines can be traced to a
    different numpy/sklearn/torch/onnx.
    """
    return {
        name: str(getattr(importlib.import_module(name), "__version__", "unknown"))
        for name in sorted(modules)
    }
