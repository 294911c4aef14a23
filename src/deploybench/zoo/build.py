"""Build open models and datasets on demand and cache them.

Cache layout (``cache_dir`` defaults to :func:`deploybench.paths.zoo_cache_dir`)::

    <cache_dir>/models/<name>-v<builder_version>/model.onnx   (model.pt, model.skops)
    <cache_dir>/models/<name>-v<builder_version>/manifest.json
    <cache_dir>/datasets/<name>-v<builder_version>/dataset.npz
    <cache_dir>/datasets/<name>-v<builder_version>/manifest.json

The manifest is written last, after the artifact, and records its sha256: an entry counts as
built only when the artifact exists and still hashes to the manifest's sha256. Anything else
(interrupted build, corrupted or edited file) is rebuilt. Builds are deterministic, so the
rebuilt file is byte-identical to the lost one.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploybench.errors import DatasetError, ModelError, UserError
from deploybench.hashing import sha256_bytes, sha256_file
from deploybench.paths import zoo_cache_dir
from deploybench.zoo import datasets, diabetes, digits, digits_cnn, digits_forest, pytorchcv_nets
from deploybench.zoo.artifact import Built, ZooArtifact, tool_versions
from deploybench.zoo.cache import atomic_write_bytes, file_lock, remove_temp_files
from deploybench.zoo.catalog import get_dataset, get_model

__all__ = ["ZooArtifact", "build_dataset", "build_model", "entry_dir"]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TORCH_MODEL_FILE = "model.pt"
SKLEARN_MODEL_FILE = "model.skops"
# Model format -> file name in the cache entry.
_MODEL_FILES = {"onnx": MODEL_FILE, "torch": TORCH_MODEL_FILE, "sklearn": SKLEARN_MODEL_FILE}
DATASET_FILE = "dataset.npz"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"

# name -> builder. Keys must match the catalog; a test checks both stay in sync.
MODEL_BUILDERS: dict[str, Callable[[], Built]] = {
    "digits-cnn": digits_cnn.build_cnn,
    "digits-cnn-torch": digits_cnn.build_cnn_torch,
    "digits-mlp": digits.build_mlp,
    "digits-forest": digits_forest.build_forest,
    "diabetes-linear": diabetes.build_linear,
    "resnet18-wd4-digits32": pytorchcv_nets.build_resnet18_wd4,
    "resnet18-wd4-digits32-torch": pytorchcv_nets.build_resnet18_wd4_torch,
}
DATASET_BUILDERS: dict[str, Callable[[], Built]] = {
    "digits": datasets.build_digits,
    "digits32": datasets.build_digits32,
    "diabetes": datasets.build_diabetes,
}

# How to get a missing build-time module; sklearn and numpy are core dependencies.
_INSTALL_HINTS = {
    "torch": "pip install 'deploybench[torch]'",
    "onnx": "pip install 'deploybench[onnx]'",
    "sklearn": "pip install scikit-learn",
    "skops": "pip install 'deploybench[embedded]'",
    # --no-deps: pytorchcv declares torchvision, which would pull another torch.
    "pytorchcv": "pip install --no-deps pytorchcv==0.0.74",
}


def build_model(name: str, cache_dir: Path | None = None) -> ZooArtifact:
    """Return the open model ``name`` (ONNX, a state dict for torch models, a skops file for
    sklearn models), building it on first use.

    Args:
        name: a name from :func:`deploybench.zoo.list_models`, e.g. ``"digits-mlp"``.
        cache_dir: cache root; defaults to ``DEPLOYBENCH_HOME/zoo``.

    Raises:
        ModelError: unknown name, or a module needed to build it is not installed.
    """
    model = get_model(name)
    _require(f"open model {name!r}", model.requires, ModelError)
    return _build_cached(
        kind="model",
        name=model.name,
        builder_version=model.builder_version,
        filename=_MODEL_FILES[model.format],
        builder=MODEL_BUILDERS[model.name],
        extra={"task": model.task.value, "default_dataset": model.default_dataset},
        cache_dir=cache_dir,
    )


def build_dataset(name: str, cache_dir: Path | None = None) -> ZooArtifact:
    """Return the open dataset ``name`` as ``.npz``, building it on first use.

    Args:
        name: a name from :func:`deploybench.zoo.list_datasets`, e.g. ``"digits"``.
        cache_dir: cache root; defaults to ``DEPLOYBENCH_HOME/zoo``.

    Raises:
        DatasetError: unknown name, or a module needed to build it is not installed.
    """
    dataset = get_dataset(name)
    _require(f"open dataset {name!r}", dataset.requires, DatasetError)
    return _build_cached(
        kind="dataset",
        name=dataset.name,
        builder_version=dataset.builder_version,
        filename=DATASET_FILE,
        builder=DATASET_BUILDERS[dataset.name],
        extra={"task": dataset.task.value},
        cache_dir=cache_dir,
    )


def entry_dir(kind: str, name: str, builder_version: int, cache_dir: Path | None = None) -> Path:
    """Folder of one cache entry; ``kind`` is ``"model"`` or ``"dataset"``."""
    root = cache_dir if cache_dir is not None else zoo_cache_dir()
    return root / f"{kind}s" / f"{name}-v{builder_version}"


def _module_available(module: str) -> bool:
    # find_spec locates the module without importing it (importing torch takes seconds).
    return importlib.util.find_spec(module) is not None


def _require(what: str, modules: tuple[str, ...], error: type[UserError]) -> None:
    missing = [m for m in modules if not _module_available(m)]
    if missing:
        hints = "; ".join(_INSTALL_HINTS.get(m, f"install {m}") for m in missing)
        raise error(f"building {what} needs the Python module(s) {', '.join(missing)}: {hints}")


def _build_cached(
    *,
    kind: str,
    name: str,
    builder_version: int,
    filename: str,
    builder: Callable[[], Built],
    extra: dict[str, Any],
    cache_dir: Path | None,
) -> ZooArtifact:
    entry = entry_dir(kind, name, builder_version, cache_dir)
    entry.mkdir(parents=True, exist_ok=True)
    # Readers take the lock too: checking the entry while another process rewrites it could
    # pair the new file with the old manifest and trigger a needless rebuild.
    with file_lock(entry / LOCK_FILE):
        cached = _load_cached(entry, filename, builder_version)
        if cached is not None:
            return cached
        remove_temp_files(entry)
        logger.info("building open %s %r into %s", kind, name, entry)
        built = builder()
        digest = sha256_bytes(built.data)
        manifest: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "builder_version": builder_version,
            "file": filename,
            "sha256": digest,
            "tools": tool_versions(built.tools),
            **extra,
            **built.info,
        }
        artifact = entry / filename
        atomic_write_bytes(artifact, built.data)
        # The manifest goes last: it is the commit record of the entry.
        manifest_text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(entry / MANIFEST_FILE, manifest_text.encode("utf-8"))
        # Return what a later cache hit would read back, so both paths give equal manifests.
        return ZooArtifact(path=artifact, sha256=digest, manifest=json.loads(manifest_text))


def _load_cached(entry: Path, filename: str, builder_version: int) -> ZooArtifact | None:
    """The entry's artifact if it is complete and intact, else None (meaning: rebuild)."""
    artifact = entry / filename
    try:
        manifest = json.loads((entry / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(manifest, dict)
        or manifest.get("builder_version") != builder_version
        or not artifact.is_file()
    ):
        return None
    digest = sha256_file(artifact)
    if digest != manifest.get("sha256"):
        logger.warning("cached %s is corrupted (sha256 mismatch); rebuilding it", artifact)
        return None
    return ZooArtifact(path=artifact, sha256=digest, manifest=manifest)
