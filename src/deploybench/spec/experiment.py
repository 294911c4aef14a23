"""The experiment: one (problem, toolchain, target, environment, measurement plan)."""

from __future__ import annotations

from typing import Any

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


class TargetSpec(SpecModel):
    """An execution target by plugin name, with target-specific options."""

    name: str = Field(description="Target plugin name (see `deploybench plugins`).")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Target options, validated by the target."
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
