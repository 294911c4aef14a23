"""The meta-model: pure pydantic models of experiments, YAML loading, JSON Schema export.

This package imports nothing else of deploybench except its error types.
"""

from deploybench.spec.environment import EnvironmentSpec
from deploybench.spec.experiment import Experiment, Placement, TargetSpec, ToolchainSpec
from deploybench.spec.loading import format_validation_error, load_experiment, parse_experiment
from deploybench.spec.measurement import PROFILE_DEFAULTS, MeasurementPlan, Profile
from deploybench.spec.problem import DatasetRef, InputDecl, ModelRef, Problem, TaskKind
from deploybench.spec.semantic import Distance, SemanticPreservationSpec


def experiment_json_schema() -> dict[str, object]:
    """JSON Schema of an experiment file (what `deploybench schema` prints)."""
    return Experiment.model_json_schema()


__all__ = [
    "PROFILE_DEFAULTS",
    "DatasetRef",
    "Distance",
    "EnvironmentSpec",
    "Experiment",
    "InputDecl",
    "MeasurementPlan",
    "ModelRef",
    "Placement",
    "Problem",
    "Profile",
    "SemanticPreservationSpec",
    "TargetSpec",
    "TaskKind",
    "ToolchainSpec",
    "experiment_json_schema",
    "format_validation_error",
    "load_experiment",
    "parse_experiment",
]
