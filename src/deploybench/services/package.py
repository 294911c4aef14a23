"""Reproduction packages (REQ-00047): one zip with everything needed to run a stored run
again elsewhere.

Contents: ``experiment.yaml`` (the stored definition, pointing at ``inputs/``), the input
artifacts, ``requirements.lock`` (every distribution that was installed),
``requirements.txt`` (what deploybench needs, pinned to the run's versions), a buildable copy
of deploybench (``deploybench-src/``), ``environment.json``, ``run.json``, ``README.md``,
``run.sh``, a ``Dockerfile`` and ``manifest.json`` (sha256 of every other file).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import uuid
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from deploybench.errors import UserError
from deploybench.hashing import sha256_file
from deploybench.runner.record import RunRecord
from deploybench.services import requirements_closure as closure
from deploybench.spec import load_experiment
from deploybench.store.sql import SqlResultStore

# Where each stored input lands in the package (and what experiment.yaml points at).
INPUT_FILES = {
    "model": "inputs/model.onnx",
    "dataset": "inputs/dataset.npz",
    "expected_outputs": "inputs/expected_outputs.npz",
}
_EXECUTABLE = 0o100755 << 16  # regular file, rwxr-xr-x, in the zip's Unix attributes
_REGULAR = 0o100644 << 16

# One comparison line between the original record and the new one (--json: last line).
_COMPARE = """\
import json
def figures(path):
    text = open(path, encoding="utf-8").read().strip()
    try:
        r = json.loads(text)
    except ValueError:  # one record per line (--json): the last line is the record
        r = json.loads(text.splitlines()[-1]) if text else None
    m = (r or {}).get("metrics") or {}
    quality = (m.get("accuracy") or {}).get("accuracy", (m.get("regression") or {}).get("r2"))
    return r and [(m.get("latency_ms") or {}).get("median"), quality,
                  (m.get("semantic_preservation") or {}).get("ratio"),
                  r["validity"]["verdict"], r["inputs"]]
old, new = figures("run.json"), figures("rerun.json")
if not new:
    raise SystemExit("no new record in rerun.json; see the errors above")
ratio = f"{new[0] / old[0]:.2f}x" if old[0] and new[0] else "n/a"
print(f"median latency {old[0]} -> {new[0]} ms (ratio {ratio}); accuracy/R2 {old[1]} -> "
      f"{new[1]}; semantic preservation {old[2]} -> {new[2]}; verdict {old[3]} -> {new[3]}; "
      f"inputs {'identical' if old[4] == new[4] else 'DIFFERENT'}")
"""

_RUN_SH = """\
#!/usr/bin/env bash
# Run the packaged experiment again and compare it with the original run (see README.md).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${{PYTHON:-$(command -v python{python} || command -v python3 || true)}}"
[ -n "$PYTHON" ] || {{ echo "no python{python} or python3; set PYTHON" >&2; exit 1; }}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install --disable-pip-version-check -r requirements.txt ./deploybench-src
# --discard: nothing is stored; the new record is rerun.json. The data folder stays local.
export DEPLOYBENCH_HOME="${{DEPLOYBENCH_HOME:-$PWD/.deploybench}}"
status=0
.venv/bin/deploybench run experiment.yaml --json --discard > rerun.json || status=$?
.venv/bin/python - <<'EOF'
{compare}EOF
exit "$status"
"""

_DOCKERFILE = """\
# Reproduction of deploybench run {run_id} (see README.md).
FROM python:{python}-slim
WORKDIR /repro
COPY . .
RUN pip install --no-cache-dir -r requirements.txt ./deploybench-src
ENV DEPLOYBENCH_HOME=/repro/.deploybench
CMD ["deploybench", "run", "experiment.yaml", "--discard"]
"""

_README = """\
# Reproduction package of run {run_id}

Experiment **{name}**: model {model} on dataset {dataset}, toolchain {toolchain}, target
{target}; run {started_at} to {finished_at} with deploybench {version}, Python {python_full},
{platform}.

| figure | original run |
|---|---|
{figures}

## Run it again: `bash run.sh`

It creates `.venv` (`python{python}`, else `python3`; `PYTHON` overrides), installs
`requirements.txt` and the bundled `deploybench-src/` (from PyPI or your pip mirror), runs
`experiment.yaml` with `--discard` (nothing is stored; `DEPLOYBENCH_HOME` defaults to
`./.deploybench`), writes the new record to `rerun.json` and prints one line comparing it
with `run.json`. With Docker: `docker build -t repro . && docker run --rm repro`.

## What to compare

- Inputs: `experiment.yaml` names the sha256 of `inputs/*` and deploybench refuses files
  that differ, so the new record's `inputs` equal the original's.
- Accuracy / R² and semantic preservation depend on the model, the data and the runtime
  versions (pinned in `requirements.txt`): expect the same values, up to tiny
  floating-point differences on another CPU instruction set.
- Latency, throughput, memory and the verdict depend on the hardware and its load. The
  original CPU was {cpu} ({cores} logical cores; ISA features, memory, OS and settings are
  in `environment.json`): compare latency only on comparable hardware.

## Files

`experiment.yaml` (the stored definition, problem pointing at `inputs/`);
`requirements.txt` (deploybench's dependencies pinned to the run's versions);
`requirements.lock` (every distribution installed where the run ran, tools included, to
rebuild that exact environment; local versions such as `+cpu` need their vendor's index);
`environment.json` (environment snapshot); `run.json` (the original record);
`manifest.json` (sha256 of every file).
"""


class PackageError(UserError):
    """A reproduction package cannot be written (output path, run without inputs)."""


def write_package(store: SqlResultStore, run_id: str, output: Path) -> Path:
    """Write the reproduction package of run ``run_id`` (id or unique prefix) to the zip
    file ``output``, atomically; an existing file is never overwritten."""
    output = Path(output)
    if not output.parent.is_dir():
        raise PackageError(f"folder {output.parent} does not exist; create it first")
    if output.exists():
        raise PackageError(f"{output} already exists; remove it or choose another file")
    record = store.get_run(run_id).record
    names = store.artifact_names(record.id)
    with tempfile.TemporaryDirectory(prefix="deploybench-package-") as tmp:
        stage = Path(tmp)
        _stage(store, record, names, stage)
        # Created like any new file (umask applies, unlike mkstemp's 0600), next to output
        # so that os.replace is an atomic rename.
        partial = output.with_name(f".{output.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            _zip(stage, partial, record.id, datetime.fromisoformat(record.started_at))
            os.replace(partial, output)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return output


def _stage(store: SqlResultStore, record: RunRecord, names: dict[str, str], stage: Path) -> None:
    """Write every file of the package (but the manifest) under ``stage``."""
    for name in ("model", "dataset"):
        if name not in names:
            raise PackageError(
                f"run {record.id} has no stored {name} (it failed before its inputs were "
                "stored); there is nothing to run again"
            )
        if record.inputs.get(name, names[name]) != names[name]:
            raise PackageError(
                f"run {record.id}: the stored {name} differs from the record's inputs; "
                f"check the store with `deploybench verify {record.id}`"
            )
    for name, relative in INPUT_FILES.items():
        if name in names:
            (stage / relative).parent.mkdir(parents=True, exist_ok=True)
            store.artifacts.materialize(names[name], stage / relative)
    definition = yaml.safe_dump(_definition(record, names), sort_keys=False, allow_unicode=True)
    (stage / "experiment.yaml").write_text(definition, encoding="utf-8")
    load_experiment(stage / "experiment.yaml")  # a package that cannot load is a bug here

    environment = record.environment
    python = str(_dig(environment, "python", "version") or "3.11")
    python_minor = ".".join(python.split(".")[:2])
    closure.write_install_files(
        stage, record.experiment, environment.get("packages", {}), python, record.id
    )
    (stage / "environment.json").write_text(json.dumps(environment, indent=2, sort_keys=True))
    (stage / "run.json").write_text(record.model_dump_json(indent=2))
    (stage / "README.md").write_text(_readme(record, python, python_minor), encoding="utf-8")
    run_sh = _RUN_SH.format(python=python_minor, compare=_COMPARE)
    (stage / "run.sh").write_text(run_sh)
    (stage / "Dockerfile").write_text(_DOCKERFILE.format(run_id=record.id, python=python_minor))
    # Keeps a venv or rerun output from an earlier ./run.sh out of the image.
    (stage / ".dockerignore").write_text(".venv\n.deploybench\nrerun.json\n")


def _definition(record: RunRecord, names: dict[str, str]) -> dict[str, Any]:
    """The stored definition with the problem pointing at the packaged inputs."""
    definition = copy.deepcopy(record.experiment)
    problem = definition["problem"]
    model_format = problem["model"].get("format")
    if problem.get("task") is None and problem["model"].get("zoo"):
        # A path needs the task that the open problem used to supply.
        from deploybench import zoo

        problem["task"] = str(zoo.get_model(problem["model"]["zoo"]).task)
    problem["model"] = {"path": INPUT_FILES["model"], "sha256": names["model"]}
    if model_format is not None:
        problem["model"]["format"] = model_format
    problem["dataset"] = {"path": INPUT_FILES["dataset"], "sha256": names["dataset"]}
    # expected_outputs is a plain path in the spec (no sha256 field); the manifest covers it.
    problem["expected_outputs"] = (
        INPUT_FILES["expected_outputs"] if "expected_outputs" in names else None
    )
    return definition


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _figures(record: RunRecord) -> list[tuple[str, str]]:
    """The headline figures of a record, formatted for the README table."""
    metrics = record.metrics
    rows: list[tuple[str, str]] = []
    for label, value, form in (
        ("median latency", _dig(metrics, "latency_ms", "median"), "{:.4g} ms"),
        ("accuracy", _dig(metrics, "accuracy", "accuracy"), "{:.2%}"),
        ("mean IoU", _dig(metrics, "accuracy", "mean_iou"), "{:.4f}"),
        ("R²", _dig(metrics, "regression", "r2"), "{:.4f}"),
    ):
        if isinstance(value, int | float):
            rows.append((label, form.format(value)))
    semantic = metrics.get("semantic_preservation")
    if isinstance(semantic, dict) and "ratio" in semantic:
        rows.append(
            (
                f"semantic preservation ({semantic['distance']} ≤ {semantic['threshold']:g})",
                f"{semantic['identical']}/{semantic['n']} = {semantic['ratio']:.1%}",
            )
        )
    status = record.status + (f" ({record.error.message})" if record.error else "")
    reasons = "; ".join(record.validity.reasons)
    rows.append(("status", status))
    rows.append(("verdict", record.validity.verdict + (f" ({reasons})" if reasons else "")))
    return rows


def _readme(record: RunRecord, python: str, python_minor: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    experiment, environment = record.experiment, record.environment
    problem = experiment["problem"]
    return _README.format(
        run_id=record.id,
        name=experiment["name"],
        model=problem["model"].get("zoo") or problem["model"].get("path"),
        dataset=problem["dataset"].get("zoo") or problem["dataset"].get("path"),
        toolchain=experiment["toolchain"]["name"],
        target=record.target.get("description") or experiment["target"]["name"],
        started_at=record.started_at,
        finished_at=record.finished_at,
        version=record.deploybench_version,
        python=python_minor,
        python_full=python,
        platform=_dig(environment, "os", "platform") or "unknown platform",
        figures="\n".join(f"| {cell(k)} | {cell(v)} |" for k, v in _figures(record)),
        cpu=_dig(environment, "cpu", "model") or "unknown",
        cores=_dig(environment, "cpu", "logical_cores") or "?",
    )


def _zip(stage: Path, path: Path, run_id: str, when: datetime) -> None:
    """Zip ``stage`` into ``path`` with a manifest; entries carry the run's start time so
    packaging the same run twice gives the same members."""
    files = sorted(p for p in stage.rglob("*") if p.is_file())
    manifest = {
        "run_id": run_id,
        "files": {p.relative_to(stage).as_posix(): sha256_file(p) for p in files},
    }
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    date_time = max(when.timetuple()[:6], (1980, 1, 1, 0, 0, 0))  # zip cannot go earlier
    with zipfile.ZipFile(path, "x", zipfile.ZIP_DEFLATED) as archive:
        for file in [*files, stage / "manifest.json"]:
            name = file.relative_to(stage).as_posix()
            info = zipfile.ZipInfo(name, date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = _EXECUTABLE if name == "run.sh" else _REGULAR
            info.file_size = file.stat().st_size  # lets zipfile pick zip64 for big models
            with file.open("rb") as source, archive.open(info, "w") as target:
                shutil.copyfileobj(source, target, 1 << 20)
