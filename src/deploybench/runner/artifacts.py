"""Artifacts produced by a run, named and content-addressed by sha256."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploybench.hashing import sha256_file


@dataclass
class ArtifactSet:
    """Named files of a run, kept in the run's work directory until they are stored."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)

    def add(self, name: str, path: Path) -> None:
        """Register an existing file under ``name``."""
        self.files[name] = path

    def add_text(self, name: str, filename: str, text: str) -> None:
        """Write ``text`` into the work directory and register it."""
        path = self.root / filename
        path.write_text(text, encoding="utf-8")
        self.add(name, path)

    def add_json(self, name: str, filename: str, value: Any) -> None:
        """Write ``value`` as indented JSON and register it."""
        self.add_text(name, filename, json.dumps(value, indent=2, sort_keys=True, default=str))

    def digests(self) -> dict[str, str]:
        """name -> sha256 of every registered file."""
        return {name: sha256_file(path) for name, path in sorted(self.files.items())}


def export_to_folder(
    record_json: str, run_id: str, digests: dict[str, str], artifacts: ArtifactSet, out: Path
) -> Path:
    """Write ``out/runs/<id>.json`` and ``out/artifacts/<sha256>`` (content-addressed).

    ``digests`` are the record's (name -> sha256), computed once when the record was made.
    Used by ``deploybench run --out`` until the results store exists.
    """
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "artifacts").mkdir(parents=True, exist_ok=True)
    for name, digest in digests.items():
        path = artifacts.files[name]
        target = out / "artifacts" / digest
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(path, tmp)
            tmp.replace(target)
    record_path = out / "runs" / f"{run_id}.json"
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(record_json, encoding="utf-8")
    tmp.replace(record_path)
    return record_path
