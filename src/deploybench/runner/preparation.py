"""Everything that happens before anything runs: resolve, load plugins, validate, check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ValidationError

from deploybench.errors import CompatibilityError, PluginError
from deploybench.plugins import PluginKind, load_plugin
from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.spec.experiment import Experiment
from deploybench.spec.loading import format_validation_error
from deploybench.targets.base import Target, TargetInfo
from deploybench.toolchains.base import Finding, Severity, Toolchain
from deploybench.toolchains.envs import ToolchainEnvironment, satisfies, toolchain_environment


@dataclass(frozen=True)
class PreparedExperiment:
    """An experiment whose inputs, plugins and configuration were all checked."""

    experiment: Experiment
    problem: ResolvedProblem
    toolchain: Toolchain
    config: BaseModel
    target: Target
    target_info: TargetInfo
    findings: list[Finding]
    # Set when toolchain.version asks for another version than the installed one: the
    # measurement worker then runs with this environment's interpreter.
    environment: ToolchainEnvironment | None = None


def load_toolchain(name: str, version: str | None = None) -> Toolchain:
    """Instantiate a toolchain plugin, checking availability and the version constraint."""
    cls = load_plugin(PluginKind.TOOLCHAIN, name)
    availability = cls.availability()
    if not availability.available:
        raise PluginError(f"toolchain '{name}' is not available: {availability.reason}")
    toolchain: Toolchain = cls()
    if version is not None:
        installed = toolchain.tool_version()
        try:
            ok = installed is not None and Version(installed) in SpecifierSet(version)
        except InvalidVersion:
            ok = False
        if not ok:
            raise PluginError(
                f"toolchain '{name}' is at version {installed}, which does not satisfy "
                f"'{version}'; install a matching version or change toolchain.version"
            )
    return toolchain


# The toolchain whose reference config runs a model "as its original framework would": a
# PyTorch model's reference is PyTorch eager in fp32 whichever toolchain deploys it.
_FRAMEWORK_TOOLCHAINS = {"torch": "pytorch", "sklearn": "sklearn"}


def reference_toolchain(model_format: str, deploying: Toolchain) -> Toolchain:
    """The toolchain the reference run of a ``model_format`` model uses."""
    name = _FRAMEWORK_TOOLCHAINS.get(model_format)
    if name is None or name == deploying.name:
        return deploying
    return load_toolchain(name)


def _toolchain_and_environment(
    name: str, version: str | None
) -> tuple[Toolchain, ToolchainEnvironment | None]:
    """The toolchain, plus the environment to run it in when the installed version does not
    satisfy ``version`` (built from the package index when not cached)."""
    toolchain = load_toolchain(name)
    if version is None or satisfies(toolchain.tool_version(), version):
        return toolchain, None
    return toolchain, toolchain_environment(type(toolchain), version)


def load_target(name: str, config: Mapping[str, Any] | None = None) -> Target:
    """Instantiate a target plugin for ``target.config``, checking that it is available and
    that the configuration is valid (errors name the field and what is allowed)."""
    cls = load_plugin(PluginKind.TARGET, name)
    availability = cls.availability()
    if not availability.available:
        raise PluginError(f"target '{name}' is not available: {availability.reason}")
    return configure_target(name, config)


def configure_target(name: str, config: Mapping[str, Any] | None = None) -> Target:
    """The target plugin ``name`` configured by ``target.config``, without checking that its
    tools are installed here: enough to :meth:`~Target.describe` it (the lab server checks
    experiments against the board they ask for, which only an agent can run)."""
    cls = load_plugin(PluginKind.TARGET, name)
    if cls.config_model is None:
        if config:
            raise PluginError(f"target '{name}' takes no options; remove target.config")
        target: Target = cls.configured(None)
        return target
    try:
        parsed = cls.config_model.model_validate(dict(config or {}))
    except ValidationError as exc:
        lines = format_validation_error(exc, cls.config_model, prefix="target.config")
        raise PluginError(
            f"invalid configuration for target '{name}':\n  " + "\n  ".join(lines)
        ) from None
    configured: Target = cls.configured(parsed)
    return configured


@dataclass(frozen=True)
class ProblemFiles:
    """Files that replace the ones a problem names (a replay uses stored artifacts)."""

    model: Path
    dataset: Path
    expected_outputs: Path | None = None


def prepare_experiment(
    experiment: Experiment, files: ProblemFiles | None = None
) -> PreparedExperiment:
    """Resolve the problem, load and configure plugins, run the toolchain's checks.

    Raises a :class:`~deploybench.errors.UserError` subclass for anything the user must fix;
    error findings raise :class:`CompatibilityError` listing all of them.
    """
    toolchain, environment = _toolchain_and_environment(
        experiment.toolchain.name, experiment.toolchain.version
    )
    config = toolchain.parse_config(experiment.toolchain.config)
    target = load_target(experiment.target.name, experiment.target.config)
    if environment is not None:
        target = _in_environment(target, environment)
    for probe in experiment.measurement.probes:
        try:
            load_plugin(PluginKind.PROBE, probe)
        except PluginError as exc:
            raise PluginError(f"measurement.probes: {exc}") from None
    if files is None:
        problem = resolve_problem(experiment.problem)
    else:
        problem = resolve_problem(
            experiment.problem, files.model, files.dataset, files.expected_outputs
        )
    if problem.model_format not in toolchain.input_formats:
        raise CompatibilityError(
            f"toolchain '{toolchain.name}' takes {', '.join(toolchain.input_formats)} models, "
            f"not {problem.model_format}"
        )
    info = target.describe()
    findings = toolchain.check(problem, info, config)
    usable = info.extra.get("usable_cpus")
    wanted = experiment.environment.cpu_affinity
    if wanted is not None and usable is not None and not set(wanted) <= set(usable):
        findings.append(
            Finding(
                severity=Severity.ERROR,
                code="cpu-affinity",
                message=f"environment.cpu_affinity {wanted} names CPUs the target does not "
                f"have or cannot use (usable: {usable})",
                fix="pick CPUs from the usable list",
            )
        )
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise CompatibilityError(
            "the experiment cannot run as configured:\n  " + "\n  ".join(f.render() for f in errors)
        )
    return PreparedExperiment(
        experiment, problem, toolchain, config, target, info, findings, environment
    )


def _in_environment(target: Target, environment: ToolchainEnvironment) -> Target:
    from deploybench.targets.local import LocalCpuTarget

    if type(target) is LocalCpuTarget:
        return LocalCpuTarget(python=str(environment.python))
    raise PluginError(
        f"target '{target.name}' cannot run a toolchain in its own environment; use the "
        "local target or install the wanted toolchain version"
    )
