"""Refusing impossible experiments at submit (REQ-00024, REQ-00025): the toolchain's
``check()`` runs in the server against the problem's uploaded files and the registered targets
the experiment may run on, before anything is queued."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deploybench.errors import CompatibilityError, UserError
from deploybench.services.lab_submit import input_file_name
from deploybench.spec import Experiment
from deploybench.store.artifacts import ArtifactStore
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import Finding, Severity

log = logging.getLogger(__name__)


def refuse_impossible(
    experiment: Experiment,
    data: dict[str, Any],
    inputs: dict[str, str],
    artifacts: ArtifactStore,
    candidates: Sequence[tuple[str, dict[str, Any]]],
    index: int,
) -> None:
    """Raise :class:`CompatibilityError` when the toolchain's checks find an error on every
    candidate target ``(name, TargetInfo dict)``. Nothing is checked while no target is
    registered (a job may wait for one that joins later) or when the server lacks the
    toolchain's runtime (the agent's checks still run before its build)."""
    from deploybench.plugins import PluginKind, load_plugin
    from deploybench.problems import resolve_problem

    if not candidates:
        return
    cls = load_plugin(PluginKind.TOOLCHAIN, experiment.toolchain.name)
    if not cls.availability().available:
        return
    toolchain = cls()
    config = toolchain.parse_config(experiment.toolchain.config)
    configured = _configured_target(experiment)
    with tempfile.TemporaryDirectory(prefix="deploybench-check-") as tmp:
        folder = Path(tmp)
        model = artifacts.materialize(
            inputs["model"], folder / input_file_name(data, "model", ".onnx")
        )
        dataset = artifacts.materialize(inputs["dataset"], folder / "dataset.npz")
        problem = resolve_problem(experiment.problem, model_path=model, dataset_path=dataset)
        if problem.model_format not in toolchain.input_formats:
            raise CompatibilityError(
                f"experiment [{index}]: toolchain '{toolchain.name}' takes "
                f"{', '.join(toolchain.input_formats)} models, not {problem.model_format}"
            )
        refusals: dict[str, list[Finding]] = {}
        for name, info in candidates:
            try:
                described = configured or TargetInfo.model_validate(info)
            except ValueError:
                return  # an agent of another version: leave the check to it
            try:
                findings = toolchain.check(problem, described, config)
            except UserError:
                raise
            except Exception:  # a checker's own failure must not refuse the experiment
                log.exception("the %s checks failed on the server; left to the agent", cls.name)
                return
            errors = [f for f in findings if f.severity is Severity.ERROR]
            if not errors:
                return
            refusals[name] = errors
    raise CompatibilityError(_message(index, experiment.toolchain.name, refusals))


def _configured_target(experiment: Experiment) -> TargetInfo | None:
    """With ``target.config`` (a board), the target as configured: what an agent registered
    describes its default configuration, not the board this experiment asks for. An invalid
    configuration is refused here, naming the allowed values."""
    if not experiment.target.config:
        return None
    from deploybench.runner.preparation import configure_target

    return configure_target(experiment.target.name, experiment.target.config).describe()


def _message(index: int, toolchain: str, refusals: dict[str, list[Finding]]) -> str:
    """One block per distinct set of reasons, naming the targets it applies to."""
    groups: dict[str, list[str]] = {}
    for target, errors in refusals.items():
        key = json.dumps([f.render() for f in errors])
        groups.setdefault(key, []).append(target)
    lines = [
        f"experiment [{index}] cannot run with toolchain '{toolchain}' on any target it may "
        "be placed on; nothing was queued:"
    ]
    for key, targets in groups.items():
        lines.append(f"  on {', '.join(targets)}:")
        lines.extend(f"    {text}" for text in json.loads(key))
    return "\n".join(lines)
