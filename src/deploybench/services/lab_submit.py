"""Checking a submitted definition before it is queued: validation, plugins, inputs."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from deploybench.errors import UserError
from deploybench.spec import Experiment, parse_experiment
from deploybench.store.artifacts import ArtifactStore


def check_plugins(experiment: Experiment, index: int) -> None:
    """Unknown toolchain or probe names, and a toolchain config the toolchain refuses, are
    definition errors (422) found at submit, not on an agent later. (The farm's deploybench
    and plugins are the server's. Targets are not checked here: agents register them, and a
    job may wait for one that joins later.)"""
    from deploybench.errors import PluginError, SpecError
    from deploybench.plugins import PluginKind, known_names, load_plugin

    checks = [
        ("toolchain.name", PluginKind.TOOLCHAIN, experiment.toolchain.name),
        *(("measurement.probes", PluginKind.PROBE, p) for p in experiment.measurement.probes),
    ]
    for path, kind, name in checks:
        if name not in known_names(kind):
            raise SpecError(
                f"experiment [{index}] is invalid:\n{path}: unknown {kind.value} '{name}'; "
                f"known: {', '.join(known_names(kind))}"
            )
    toolchain = load_plugin(PluginKind.TOOLCHAIN, experiment.toolchain.name)()
    try:
        toolchain.parse_config(experiment.toolchain.config)
    except PluginError as exc:
        raise SpecError(f"experiment [{index}] is invalid:\n{exc}") from None


def input_file_name(definition: dict[str, Any], what: str, default: str) -> str:
    """``model.onnx``-like name for a problem input fetched from the artifact store: it
    keeps the suffix of the path the user gave, which format detection may rely on."""
    ref = definition.get("problem", {}).get(what, {})
    suffix = PurePosixPath(str(ref.get("path") or "")).suffix if isinstance(ref, dict) else ""
    return what + (suffix or default)


def _input_digest(ref: dict[str, Any], what: str, artifacts: ArtifactStore) -> str:
    """The sha256 of a problem input: open problems are built and stored here, user files
    must have been uploaded (the client does it) and are referenced by their sha256."""
    if ref.get("zoo"):
        from deploybench import zoo

        build = zoo.build_model if what == "model" else zoo.build_dataset
        return artifacts.write_file(build(ref["zoo"]).path).sha256
    digest = ref.get("sha256")
    if not digest:
        raise UserError(
            f"problem.{what}: a file given by path must be uploaded first and referenced by "
            "its sha256 (the Python client and `deploybench submit` do this for you)"
        )
    if not artifacts.exists(digest):
        raise UserError(
            f"problem.{what}: no uploaded artifact with sha256 {digest}; upload it first"
        )
    return str(digest)


def prepare_submission(
    definition: dict[str, Any], index: int, artifacts: ArtifactStore
) -> tuple[dict[str, Any], dict[str, str], str]:
    """(resolved definition, input sha256s, wanted target) or an error naming the field."""
    experiment = parse_experiment(definition, source=f"experiment [{index}]")
    check_plugins(experiment, index)
    if experiment.problem.expected_outputs is not None:
        raise UserError(
            f"experiment [{index}]: problem.expected_outputs cannot be sent to the lab "
            "yet; run it locally with `deploybench run`"
        )
    data = experiment.model_dump(mode="json")
    inputs = {
        "model": _input_digest(data["problem"]["model"], "model", artifacts),
        "dataset": _input_digest(data["problem"]["dataset"], "dataset", artifacts),
    }
    return data, inputs, experiment.target.name
