"""Datasets as ``.npz`` files: one array per model input plus ``labels`` or ``targets``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from deploybench.errors import DatasetError
from deploybench.problems.tensors import TensorSpec

LABEL_KEYS = ("labels", "targets")


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` (no pickles: object arrays are refused)."""
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist; check problem.dataset.path")
    if not zipfile.is_zipfile(path):  # np.load would read .npy or pickles, or misreport
        raise DatasetError(
            f"{path} is not a readable .npz file (not a zip archive); write it with numpy.savez"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(
            f"{path} is not a readable .npz file ({exc}); write it with numpy.savez"
        ) from None
    except ValueError as exc:
        raise DatasetError(
            f"{path} holds object arrays ({exc}); store plain numeric arrays only"
        ) from None


def validate_dataset(arrays: dict[str, np.ndarray], inputs: list[TensorSpec], source: str) -> int:
    """Check names, dtypes and shapes against the model's inputs; return the sample count.

    The first axis of every array is the sample axis; the model's first dimension is its
    batch dimension, so only the remaining dimensions are compared.
    """
    problems: list[str] = []
    expected_names = {spec.name for spec in inputs}
    unknown = sorted(set(arrays) - expected_names - set(LABEL_KEYS))
    if unknown:
        problems.append(
            f"arrays {', '.join(unknown)} match no model input "
            f"(model inputs: {', '.join(sorted(expected_names))}); rename or remove them"
        )
    counts: dict[str, int] = {}
    for spec in inputs:
        if spec.name not in arrays:
            problems.append(
                f"no array named '{spec.name}' for model input {spec.render()}; "
                f"arrays present: {', '.join(sorted(arrays)) or 'none'}"
            )
            continue
        array = arrays[spec.name]
        if str(array.dtype) != spec.dtype:
            problems.append(
                f"array '{spec.name}' has dtype {array.dtype} but the model expects "
                f"{spec.dtype}; convert it with .astype(numpy.{spec.dtype})"
            )
        if array.ndim != len(spec.shape):
            problems.append(
                f"array '{spec.name}' has shape {list(array.shape)} (rank {array.ndim}) but "
                f"model input {spec.render()} has rank {len(spec.shape)}; the first axis "
                "holds the samples"
            )
        else:
            for axis, (got, want) in enumerate(
                zip(array.shape[1:], spec.shape[1:], strict=True), 1
            ):
                if isinstance(want, int) and got != want:
                    problems.append(
                        f"array '{spec.name}' has size {got} on axis {axis} but model input "
                        f"{spec.render()} needs {want}"
                    )
        counts[spec.name] = int(array.shape[0]) if array.ndim else 0
    for key in LABEL_KEYS:
        if key in arrays:
            counts[key] = int(arrays[key].shape[0]) if arrays[key].ndim else 0
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{name}={count}" for name, count in sorted(counts.items()))
        problems.append(f"arrays disagree on the number of samples ({listing})")
    if not problems and counts and min(counts.values()) == 0:
        problems.append("the dataset has no samples")
    if problems:
        raise DatasetError(
            f"dataset {source} does not match the model:\n  " + "\n  ".join(problems)
        )
    return next(iter(counts.values()), 0)
