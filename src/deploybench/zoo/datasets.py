"""The zoo's datasets: fixed train/test splits of scikit-learn's bundled data (no download).

The test splits become the ``digits``, ``digits32`` and ``diabetes`` open datasets; the models of
:mod:`deploybench.zoo.digits` and :mod:`deploybench.zoo.diabetes` train on the complementary
train splits only, so measured accuracy is honest held-out accuracy.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from deploybench.zoo.artifact import Built

TEST_SIZE = 0.2
SPLIT_SEED = 0
# Side of the digits32 images: the smallest input ImageNet-style networks downsample cleanly
# (five stride-2 stages leave 1x1), which keeps the architecture tests fast.
DIGITS32_SIZE = 32
# The earliest date a zip entry can carry; a fixed date keeps the npz byte-reproducible
# (numpy.savez stamps the current time into every entry).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIP_UNIX = 3  # "created on Unix", fixed so the bytes do not depend on the building OS


@dataclass(frozen=True)
class Split:
    """Train and held-out test arrays of one dataset."""

    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[Any]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[Any]


def digits_split() -> Split:
    """8x8 digits, pixels scaled from 0..16 to [0, 1] float32, labels int64; stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # Division by 16 is exact in float32, so the cast loses nothing.
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=SPLIT_SEED
    )
    return Split(x_train, y_train, x_test, y_test)


def upscale_digits(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(N, 64) digits pixels -> (N, 3, 32, 32) images for image-classification networks.

    Each pixel becomes a 4x4 block (nearest neighbour: exact, so the bytes are reproducible)
    and the grey image is copied to three channels, the input layout of ImageNet-style models.
    """
    side = DIGITS32_SIZE // 8
    images = x.reshape(-1, 1, 8, 8).repeat(side, axis=2).repeat(side, axis=3)
    return np.ascontiguousarray(images.repeat(3, axis=1), dtype=np.float32)


def digits32_split() -> Split:
    """:func:`digits_split` (same samples, same labels) with the images upscaled to 3x32x32."""
    split = digits_split()
    return Split(
        upscale_digits(split.x_train), split.y_train, upscale_digits(split.x_test), split.y_test
    )


def diabetes_split() -> Split:
    """Diabetes (standardized features as shipped by sklearn), all float32."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    bunch = load_diabetes()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SPLIT_SEED
    )
    return Split(x_train, y_train, x_test, y_test)


def npz_bytes(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """An uncompressed ``.npz`` readable by ``numpy.load``, identical for identical arrays.

    Entries are written in the mapping's order with fixed zip metadata; pickles are refused
    so the file can be loaded with ``allow_pickle=False``.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            payload = io.BytesIO()
            np.lib.format.write_array(payload, np.ascontiguousarray(array), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            entry.create_system = _ZIP_UNIX
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, payload.getvalue())
    return buffer.getvalue()


def _describe(arrays: Mapping[str, npt.NDArray[Any]]) -> dict[str, Any]:
    return {
        key: {"shape": list(array.shape), "dtype": str(array.dtype)}
        for key, array in arrays.items()
    }


def build_digits() -> Built:
    """The ``digits`` dataset: ``input`` float32 (360, 64) and ``labels`` int64 (360,)."""
    split = digits_split()
    arrays = {"input": split.x_test, "labels": split.y_test}
    return Built(npz_bytes(arrays), ("numpy", "sklearn"), {"arrays": _describe(arrays)})


def build_digits32() -> Built:
    """The ``digits32`` dataset: ``input`` float32 (360, 3, 32, 32), ``labels`` int64 (360,)."""
    split = digits32_split()
    arrays = {"input": split.x_test, "labels": split.y_test}
    return Built(npz_bytes(arrays), ("numpy", "sklearn"), {"arrays": _describe(arrays)})


def build_diabetes() -> Built:
    """The ``diabetes`` dataset: ``input`` float32 (89, 10) and ``targets`` float32 (89,)."""
    split = diabetes_split()
    arrays = {"input": split.x_test, "targets": split.y_test}
    return Built(npz_bytes(arrays), ("numpy", "sklearn"), {"arrays": _describe(arrays)})
