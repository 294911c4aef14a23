"""The experiment: one (problem, toolchain, target, environment, measurement plan)."""

from __future__ import annotations

from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import Field, field_validator

from deploybench.spec.base import SpecModel
from deploybench.spec.environment import EnvironmentSpec
from deploybench.spec.measurement import MeasurementPlan
from deploybench.spec.problem import Problem
from deploybench.spec.semantic import SemanticPreservationSpec

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class ToolchainSpec(SpecModel):
    """A deployment toolchain by plugin name, with a version constraint and its own config.

    ``config`` stays a mapping here; the toolchain validates it against its own model, so the
    core schema never imports plugins.
    """

    name: str = Field(description="Toolchain plugin name (see `deploybench plugins`).")
    version: str | None = Field(
        default=None, description="PEP 440 constraint on the tool's version, e.g. '>=1.18,<2'."
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="Toolchain options, validated by the toolchain."
    )

    @field_validator("version")
    @classmethod
    def _check_specifier(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise ValueError(
                f"'{value}' is not a version constraint; write e.g. '>=1.18' or '==1.32.0'"
            ) from None
        return value


AttributeValue = str | int | float | bool


class Placement(SpecModel):
    """Where a lab runs the experiment among the farm's targets of the plugin ``target.name``.

    Ignored by a local ``deploybench run`` (there is one target: this host).
    """

    target: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.@-]+/[A-Za-z0-9_.-]+$",
        description="One farm target by its full name, 'agent/plugin' (see `deploybench "
        "targets`). Default: any target of the plugin that matches the selector.",
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Tags every chosen target must have (its capabilities, `kind:<kind>`, and "
        "tags operators add).",
    )
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict,
        description="Target description fields that must match, by dotted path into the "
        "target's info, e.g. {cores: 8, 'extra.board': 'rpi5'}; a list field matches when it "
        "contains the value (isa_features: avx2).",
    )
    mode: Literal["any", "each"] = Field(
        default="any",
        description="any: one run on the first matching target that is free; each: one run on "
        "every matching target (fanned out at submission).",
    )


class TargetSpec(SpecModel):
    """An execution target by plugin name, with target-specific options."""

    name: str = Field(description="Target plugin name (see `deploybench plugins`).")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Target options, validated by the target."
    )
    placement: Placement = Field(
        default_factory=Placement, description="Lab only: which farm targets may run it."
    )
    max_runtime_s: float | None = Field(
        default=None,
        gt=0,
        description="Lab only: wall-clock limit of one attempt on a target, in seconds. The "
        "lab stops the run past it (failure kind 'timeout') and uses it to keep runs out of "
        "other users' reservations. Default: the lab's default_max_runtime_s; required "
        "while reservations are in force.",
    )


class Experiment(SpecModel):
    """Everything needed to run and reproduce one experiment."""

    name: str = Field(pattern=NAME_PATTERN, description="Short identifier of the experiment.")
    description: str | None = Field(default=None, description="Free text.")
    problem: Problem
    toolchain: ToolchainSpec
    target: TargetSpec = Field(default_factory=lambda: TargetSpec(name="local"))
    environment: EnvironmentSpec = Field(default_factory=EnvironmentSpec)
    measurement: MeasurementPlan = Field(default_factory=MeasurementPlan)
    semantic_preservation: SemanticPreservationSpec | None = Field(
        default=None,
        description="How outputs are compared with the reference run. Default by task: "
        "label/0 for classification, rel/1e-3 otherwise.",
    )
