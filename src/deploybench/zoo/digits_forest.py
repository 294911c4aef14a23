"""``digits-forest``: a scikit-learn random forest on the digits train split, saved with skops.

``skops.io.dumps`` is not byte-reproducible: it names array files and memo entries after
``id()`` of Python objects (memory addresses) and stamps zip entries with the current time.
:func:`canonical_skops_bytes` renumbers those ids in schema order and rewrites the archive
with fixed timestamps, so the same forest always gives the same bytes (and sha256).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import numpy as np

from deploybench.zoo.artifact import Built
from deploybench.zoo.datasets import digits_split

FOREST_NAME = "digits-forest"
N_TREES = 8
MAX_DEPTH = 8
SEED = 0
_SCHEMA = "schema.json"
_ID_FILE = re.compile(r"^(\d+)\.npy$")
# The earliest time a zip entry can carry; fixed so the archive bytes never depend on "now".
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def train_digits_forest() -> Any:
    """Train the ``RandomForestClassifier`` (fixed seed, one job) on the digits train split."""
    from sklearn.ensemble import RandomForestClassifier

    split = digits_split()
    forest = RandomForestClassifier(
        n_estimators=N_TREES, max_depth=MAX_DEPTH, random_state=SEED, n_jobs=1
    )
    forest.fit(split.x_train, split.y_train)
    return forest


def canonical_skops_bytes(data: bytes) -> bytes:
    """The skops archive ``data`` with ids renumbered 1, 2, ... in schema order and every
    entry stored uncompressed with a fixed timestamp, in a fixed order (schema last)."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = json.loads(source.read(_SCHEMA))
        members = {name: source.read(name) for name in source.namelist() if name != _SCHEMA}
    numbers: dict[int, int] = {}

    def renumber(value: int) -> int:
        return numbers.setdefault(value, len(numbers) + 1)

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                out[key] = renumber(value)
            elif key == "file" and isinstance(value, str) and _ID_FILE.match(value):
                out[key] = f"{renumber(int(value[:-4]))}.npy"
            else:
                out[key] = walk(value)
        return out

    canonical = walk(schema)
    renamed = {f"{renumber(int(name[:-4]))}.npy": content for name, content in members.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as target:
        for name in sorted(renamed, key=lambda n: int(n[:-4])):
            target.writestr(zipfile.ZipInfo(name, date_time=_ZIP_EPOCH), renamed[name])
        schema_text = json.dumps(canonical, indent=2).encode("utf-8")
        target.writestr(zipfile.ZipInfo(_SCHEMA, date_time=_ZIP_EPOCH), schema_text)
    return buffer.getvalue()


def build_forest() -> Built:
    """Train and save ``digits-forest``; records the held-out accuracy and the tree sizes."""
    import skops.io as sio

    forest = train_digits_forest()
    split = digits_split()
    accuracy = float(np.mean(forest.predict(split.x_test) == split.y_test))
    return Built(
        canonical_skops_bytes(sio.dumps(forest)),
        ("numpy", "sklearn", "skops"),
        {
            "test_accuracy": accuracy,
            "trees": len(forest.estimators_),
            "nodes": int(sum(tree.tree_.node_count for tree in forest.estimators_)),
        },
    )
