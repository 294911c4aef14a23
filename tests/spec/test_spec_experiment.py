"""The experiment meta-model: short forms, paths, strictness and fix-it messages."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pydantic
import pytest

from deploybench.errors import SpecError
from deploybench.spec import (
    PROFILE_DEFAULTS,
    EnvironmentSpec,
    Experiment,
    MeasurementPlan,
    Profile,
    SemanticPreservationSpec,
    TaskKind,
    load_experiment,
    parse_experiment,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "digits-mlp-ort-int8.yaml"

BASE: dict[str, Any] = {
    "name": "exp",
    "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
    "toolchain": {"name": "onnxruntime"},
}


def _with(**sections: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(sections)
    return data


def _error(data: Any, **kwargs: Any) -> str:
    with pytest.raises(SpecError) as info:
        parse_experiment(data, **kwargs)
    return str(info.value)


def test_example_loads() -> None:
    experiment = load_experiment(EXAMPLE)
    assert experiment.name == "digits-mlp-ort-int8"
    assert experiment.problem.model.zoo == "digits-mlp"
    assert experiment.problem.dataset.zoo == "digits"
    assert experiment.toolchain.name == "onnxruntime"
    assert experiment.toolchain.config == {
        "graph_optimization": "all",
        "quantization": "dynamic-int8",
    }
    assert experiment.target.name == "local"
    assert experiment.environment.threads == 1
    assert experiment.measurement.profile is Profile.QUICK
    assert experiment.measurement.repetitions == 3
    assert experiment.semantic_preservation is not None
    assert experiment.semantic_preservation.distance == "label"
    assert experiment.semantic_preservation.threshold == 0


def test_defaults_when_sections_are_omitted() -> None:
    experiment = parse_experiment(BASE)
    assert experiment.target.name == "local"
    assert experiment.target.config == {}
    assert experiment.environment == EnvironmentSpec()
    assert experiment.measurement.profile is Profile.DEFAULT
    assert experiment.measurement.probes == ["peak-rss", "cpu-time", "thermal"]
    assert experiment.semantic_preservation is None


def test_zoo_short_form() -> None:
    problem = parse_experiment(BASE).problem
    assert problem.model.zoo == "digits-mlp"
    assert problem.model.path is None
    assert problem.model.label == "zoo:digits-mlp"
    assert problem.dataset.zoo == "digits"


def test_path_short_form_is_resolved_against_the_yaml_folder(tmp_path: Path) -> None:
    folder = tmp_path / "exps"
    folder.mkdir()
    spec = folder / "e.yaml"
    spec.write_text(
        "name: e\n"
        "problem:\n"
        "  model: ./m.onnx\n"
        "  dataset: {path: data/d.npz}\n"
        "  task: classification\n"
        "  expected_outputs: out/expected.npz\n"
        "toolchain: {name: onnxruntime}\n"
    )
    problem = load_experiment(spec).problem
    assert problem.model.zoo is None
    assert problem.model.path == folder.resolve() / "m.onnx"
    assert problem.dataset.path == folder.resolve() / "data" / "d.npz"
    assert problem.expected_outputs == folder.resolve() / "out" / "expected.npz"
    assert problem.task is TaskKind.CLASSIFICATION


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    model = tmp_path / "elsewhere" / "m.onnx"
    data = _with(
        problem={"model": {"path": str(model)}, "dataset": "zoo:digits", "task": "regression"}
    )
    experiment = parse_experiment(data, base_dir=tmp_path / "other")
    assert experiment.problem.model.path == model


def test_relative_path_without_base_dir_stays_relative() -> None:
    data = _with(problem={"model": "m.onnx", "dataset": "zoo:digits", "task": "regression"})
    assert parse_experiment(data).problem.model.path == Path("m.onnx")


def test_models_are_frozen() -> None:
    experiment = parse_experiment(BASE)
    with pytest.raises(pydantic.ValidationError):
        experiment.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        experiment.measurement.batch_size = 4  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        experiment.problem.model.zoo = "digits-cnn"  # type: ignore[misc]


def test_unknown_top_level_key_names_path_hint_and_allowed_keys() -> None:
    message = _error(_with(measurment={"profile": "quick"}))
    assert "measurment: unknown key 'measurment'" in message
    assert "did you mean 'measurement'?" in message
    assert "allowed keys: description, environment, measurement, name, problem" in message


def test_unknown_nested_key_names_full_path() -> None:
    message = _error(_with(measurement={"profle": "quick"}))
    assert "measurement.profle: unknown key 'profle'" in message
    assert "did you mean 'profile'?" in message
    assert "allowed keys:" in message
    assert "warmup_runs" in message


def test_unknown_key_in_model_ref() -> None:
    data = _with(problem={"model": {"pth": "m.onnx"}, "dataset": "zoo:digits"})
    message = _error(data)
    assert "problem.model.pth: unknown key 'pth'" in message
    assert "did you mean 'path'?" in message
    assert "allowed keys: format, inputs, kwargs, module, outputs, path, sha256, zoo" in message


def test_unknown_key_without_close_match_has_no_hint() -> None:
    message = _error(_with(zzzzzz=1))
    assert "unknown key 'zzzzzz'" in message
    assert "did you mean" not in message


def test_every_problem_is_reported_at_once() -> None:
    message = _error(_with(measurement={"profle": "quick"}, environment={"threads": 0}))
    assert "measurement.profle" in message
    assert "environment.threads" in message


def test_missing_required_field() -> None:
    data = copy.deepcopy(BASE)
    del data["toolchain"]
    assert "toolchain: required field is missing" in _error(data)


@pytest.mark.parametrize("name", ["", "has space", "-leading", "a/b"])
def test_bad_experiment_name(name: str) -> None:
    assert "name:" in _error(_with(name=name))


@pytest.mark.parametrize(
    ("distance", "threshold"),
    [
        ("max_abs", -0.1),
        ("rel", math.nan),
        ("rel", math.inf),
        ("label", 1.0),
        ("label", 3.0),
        ("topk", 1.0),
        ("cosine", 2.0),
    ],
)
def test_threshold_out_of_range(distance: str, threshold: float) -> None:
    message = _error(_with(semantic_preservation={"distance": distance, "threshold": threshold}))
    assert "semantic_preservation" in message
    assert "threshold" in message


@pytest.mark.parametrize(
    ("distance", "threshold"),
    [("max_abs", 5.0), ("rel", 1e-3), ("label", 0.0), ("topk", 0.99), ("cosine", 1.99)],
)
def test_threshold_in_range(distance: str, threshold: float) -> None:
    spec = SemanticPreservationSpec.model_validate({"distance": distance, "threshold": threshold})
    assert spec.threshold == threshold


def test_threshold_message_names_distance_and_bound() -> None:
    message = _error(_with(semantic_preservation={"distance": "cosine", "threshold": 2}))
    assert "'cosine'" in message
    assert "< 2.0" in message


def test_unknown_distance() -> None:
    message = _error(_with(semantic_preservation={"distance": "l2", "threshold": 0}))
    assert "semantic_preservation.distance" in message
    assert "'l2'" in message


@pytest.mark.parametrize("profile", list(Profile))
def test_profile_fills_omitted_fields(profile: Profile) -> None:
    plan = MeasurementPlan(profile=profile).resolved()
    for key, value in PROFILE_DEFAULTS[profile].items():
        assert getattr(plan, key) == value, key
    assert plan.max_iterations is not None
    assert plan.max_iterations >= PROFILE_DEFAULTS[profile]["min_iterations"]


def test_explicit_fields_win_over_profile() -> None:
    plan = MeasurementPlan(profile=Profile.RIGOROUS, repetitions=2, min_duration=0.5).resolved()
    assert plan.repetitions == 2
    assert plan.min_duration == 0.5
    assert plan.warmup_runs == PROFILE_DEFAULTS[Profile.RIGOROUS]["warmup_runs"]
    assert plan.max_duration == PROFILE_DEFAULTS[Profile.RIGOROUS]["max_duration"]


def test_unresolved_plan_keeps_gaps() -> None:
    plan = parse_experiment(_with(measurement={"profile": "quick"})).measurement
    assert plan.repetitions is None
    assert plan.resolved().repetitions == PROFILE_DEFAULTS[Profile.QUICK]["repetitions"]


def test_max_duration_below_min_duration_is_rejected() -> None:
    message = _error(_with(measurement={"min_duration": 5, "max_duration": 2}))
    assert "max_duration (2.0) is below min_duration (5.0)" in message


def test_max_duration_checked_against_profile_min_duration() -> None:
    # quick's min_duration is 1.0; an explicit max_duration of 0.5 contradicts it
    message = _error(_with(measurement={"profile": "quick", "max_duration": 0.5}))
    assert "max_duration" in message
    assert "min_duration" in message


def test_min_duration_above_profile_max_duration_is_rejected() -> None:
    message = _error(_with(measurement={"profile": "quick", "min_duration": 30}))
    assert "max_duration (10.0) is below min_duration (30.0)" in message


def test_max_iterations_below_min_iterations_is_rejected() -> None:
    message = _error(_with(measurement={"min_iterations": 100, "max_iterations": 10}))
    assert "max_iterations" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("confidence", 1.0), ("confidence", 0.5), ("batch_size", 0), ("repetitions", 0)],
)
def test_measurement_bounds(field: str, value: float) -> None:
    assert f"measurement.{field}" in _error(_with(measurement={field: value}))


@pytest.mark.parametrize("version", ["banana", ">=1.18,,<", "1.2.3.x"])
def test_bad_version_constraint(version: str) -> None:
    message = _error(_with(toolchain={"name": "onnxruntime", "version": version}))
    assert "toolchain.version" in message
    assert "is not a version constraint" in message


def test_good_version_constraint() -> None:
    data = _with(toolchain={"name": "onnxruntime", "version": ">=1.18,<2"})
    assert parse_experiment(data).toolchain.version == ">=1.18,<2"


@pytest.mark.parametrize(
    ("affinity", "text"),
    [([0, 0], "must not repeat"), ([-1], ">= 0"), ([], "at least one CPU index")],
)
def test_cpu_affinity_rejected(affinity: list[int], text: str) -> None:
    message = _error(_with(environment={"cpu_affinity": affinity}))
    assert "environment.cpu_affinity" in message
    assert text in message


def test_cpu_affinity_sorted() -> None:
    experiment = parse_experiment(_with(environment={"cpu_affinity": [3, 0, 2]}))
    assert experiment.environment.cpu_affinity == [0, 2, 3]


@pytest.mark.parametrize(
    ("text", "size"), [("512MiB", 512 * 1024**2), ("2GiB", 2 * 1024**3), ("20MB", 20 * 10**6)]
)
def test_memory_limit_parsing(text: str, size: int) -> None:
    experiment = parse_experiment(_with(environment={"memory_limit": text}))
    assert experiment.environment.memory_limit == size


@pytest.mark.parametrize("text", ["1KiB", "15MiB"])
def test_memory_limit_too_small(text: str) -> None:
    message = _error(_with(environment={"memory_limit": text}))
    assert "environment.memory_limit" in message
    assert "at least 16MiB" in message


def test_memory_limit_garbage() -> None:
    assert "environment.memory_limit" in _error(_with(environment={"memory_limit": "lots"}))


def test_user_model_requires_task() -> None:
    message = _error(_with(problem={"model": "./m.onnx", "dataset": "zoo:digits"}))
    assert "'task' is required for a user-provided model" in message
    assert "classification, regression" in message


def test_unknown_task() -> None:
    data = _with(problem={"model": "./m.onnx", "dataset": "zoo:digits", "task": "ranking"})
    assert "problem.task" in _error(data)


def test_ref_needs_exactly_one_of_zoo_and_path() -> None:
    both = _with(problem={"model": {"zoo": "digits-mlp", "path": "m.onnx"}, "dataset": "zoo:d"})
    assert "exactly one of 'zoo'" in _error(both)
    neither = _with(problem={"model": {}, "dataset": "zoo:digits"})
    assert "exactly one of 'zoo'" in _error(neither)


def test_bad_sha256() -> None:
    data = _with(problem={"model": {"zoo": "digits-mlp", "sha256": "ABC"}, "dataset": "zoo:d"})
    message = _error(data)
    assert "problem.model.sha256" in message
    assert "64 lowercase hexadecimal" in message


@pytest.mark.parametrize("top", [[1, 2], "just text", 42, None])
def test_top_level_must_be_a_mapping(top: Any) -> None:
    message = _error(top, source="my.yaml")
    assert message.startswith("my.yaml: the top level must be a mapping")
    assert type(top).__name__ in message


def test_malformed_yaml_gives_line_and_column(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nproblem: {model: zoo:digits-mlp\ntoolchain: [\n")
    with pytest.raises(SpecError) as info:
        load_experiment(spec)
    message = str(info.value)
    assert str(spec) in message
    assert "malformed YAML at line" in message
    assert ", column " in message


def test_malformed_yaml_line_number_is_one_based(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\ntoolchain:\n  name: a\n   bad: indent\n")
    with pytest.raises(SpecError, match=r"line 4, column \d+"):
        load_experiment(spec)


def test_yaml_list_top_level(tmp_path: Path) -> None:
    spec = tmp_path / "list.yaml"
    spec.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match=r"top level must be a mapping.*got list"):
        load_experiment(spec)


def test_empty_yaml_file(tmp_path: Path) -> None:
    spec = tmp_path / "empty.yaml"
    spec.write_text("")
    with pytest.raises(SpecError, match="got NoneType"):
        load_experiment(spec)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such experiment file"):
        load_experiment(tmp_path / "nope.yaml")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such experiment file"):
        load_experiment(tmp_path)


def test_binary_file(tmp_path: Path) -> None:
    spec = tmp_path / "bin.yaml"
    spec.write_bytes(b"\xff\xfe\x00\x81\x82")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_experiment(spec)


def test_validation_error_names_the_file(tmp_path: Path) -> None:
    spec = tmp_path / "e.yaml"
    spec.write_text("name: e\nproblem: {model: zoo:digits-mlp, dataset: zoo:digits}\n")
    with pytest.raises(SpecError) as info:
        load_experiment(spec)
    assert str(info.value).startswith(f"{spec} is invalid:")
    assert "toolchain: required field is missing" in str(info.value)


def test_round_trip_through_dump() -> None:
    experiment = load_experiment(EXAMPLE)
    again = Experiment.model_validate(experiment.model_dump(mode="json"))
    assert again == experiment
