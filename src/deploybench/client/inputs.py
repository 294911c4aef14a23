"""Turn what a user hands to :meth:`Client.submit` into the definitions the server takes.

Every experiment is validated here first, so a typo is reported before a large model is
uploaded. Local model and dataset files are uploaded and referenced by sha256, because the
server (and the agent that runs the job) cannot read the submitter's disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, TypeAlias

from deploybench.errors import SpecError
from deploybench.spec import Experiment, load_experiment, parse_experiment

ExperimentLike: TypeAlias = str | PathLike[str] | Mapping[str, Any] | Experiment
Experiments: TypeAlias = ExperimentLike | Sequence[ExperimentLike]

Uploader = Callable[[Path], str]
"""Uploads a file and returns its sha256."""


def collect_experiments(experiments: Experiments) -> list[Experiment]:
    """Validate one or several experiments given as YAML paths, mappings or objects."""
    items: Sequence[ExperimentLike]
    if isinstance(experiments, str | PathLike | Mapping | Experiment):
        items = [experiments]
    else:
        items = list(experiments)
    if not items:
        raise SpecError("nothing to submit: give at least one experiment")
    found: list[Experiment] = []
    for index, item in enumerate(items):
        if isinstance(item, Experiment):
            found.append(item)
        elif isinstance(item, Mapping):
            # Relative paths in a mapping start at the current folder, like on the CLI.
            found.append(parse_experiment(dict(item), source=f"experiment [{index}]"))
        elif isinstance(item, str | PathLike):
            found.append(load_experiment(Path(item)))
        else:
            raise SpecError(
                f"experiment [{index}]: expected a YAML path, a mapping or an Experiment, "
                f"got {type(item).__name__}"
            )
    return found


def _upload_reference(ref: dict[str, Any], what: str, upload: Uploader) -> None:
    """Replace a local file reference by ``{path, sha256}`` of the uploaded file.

    A path that does not exist here but comes with a sha256 refers to an artifact already on
    the server (a definition copied from an earlier run) and is sent unchanged."""
    if ref.get("path") is None:
        return  # a zoo name: the server builds it itself
    path = Path(ref["path"])
    declared = ref.get("sha256")
    if not path.is_file():
        if declared is not None:
            return  # names an artifact uploaded before; the server checks that it has it
        raise SpecError(f"problem.{what}.path: no such file {path}; check the path")
    digest = upload(path)
    if declared is not None and declared != digest:
        raise SpecError(
            f"problem.{what}: {path} has sha256 {digest}, not the declared {declared}; "
            f"fix problem.{what}.sha256 or use the intended file"
        )
    ref["path"], ref["sha256"] = str(path), digest


def server_definition(experiment: Experiment, upload: Uploader) -> dict[str, Any]:
    """The JSON definition to submit, with local files uploaded and pinned by sha256."""
    data = experiment.model_dump(mode="json")
    problem = data["problem"]
    _upload_reference(problem["model"], "model", upload)
    _upload_reference(problem["dataset"], "dataset", upload)
    return data
