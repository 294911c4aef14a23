"""docs/experiments.md is up to date, documents every schema field, and the examples load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deploybench import docs
from deploybench.spec import Experiment, load_experiment
from deploybench.toolchains.onnxruntime.config import OnnxRuntimeConfig

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "experiments.md"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
# Mappings whose keys are the user's own (environment variables, target options).
FREE_FORM = {"environment.env", "target.config"}


def _schema_paths(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> set[str]:
    """Leaf field paths under ``node``, following $ref and anyOf, independent of the generator."""
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        return _schema_paths(schema, schema["$defs"][name], prefix)
    if "anyOf" in node:
        found: set[str] = set()
        for option in node["anyOf"]:
            found |= _schema_paths(schema, option, prefix)
        return found
    if node.get("type") == "null":
        return set()
    if "properties" in node:
        return {
            path
            for key, sub in node["properties"].items()
            for path in _schema_paths(schema, sub, f"{prefix}.{key}" if prefix else key)
        }
    return {prefix}


def _doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_committed_doc_matches_generator() -> None:
    assert DOC.is_file(), "docs/experiments.md is missing: run `make docs`"
    assert _doc_text() == docs.render(), "docs/experiments.md is out of date: run `make docs`"


def test_every_experiment_field_is_documented() -> None:
    schema = Experiment.model_json_schema()
    paths = _schema_paths(schema, schema, "")
    assert {"name", "measurement.min_duration", "problem.model.sha256"} <= paths
    assert len(paths) > 30
    text = _doc_text()
    missing = sorted(path for path in paths if f"`{path}`" not in text)
    assert not missing, f"fields missing from docs/experiments.md: {missing}; run `make docs`"


def test_every_onnxruntime_option_is_documented() -> None:
    schema = OnnxRuntimeConfig.model_json_schema()
    paths = _schema_paths(schema, schema, "toolchain.config")
    assert len(paths) == len(OnnxRuntimeConfig.model_fields)
    text = _doc_text()
    missing = sorted(path for path in paths if f"`{path}`" not in text)
    assert not missing, f"onnxruntime options missing from docs/experiments.md: {missing}"


def _key_paths(data: dict[str, Any], prefix: str, free_form: set[str]) -> set[str]:
    """Every key path used in a parsed experiment file."""
    found: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        found.add(path)
        if isinstance(value, dict) and path not in free_form:
            found |= _key_paths(value, path, free_form)
    return found


def test_examples_exist() -> None:
    assert EXAMPLES, "examples/*.yaml: no example experiments found"


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_loads_and_its_keys_are_documented(example: Path) -> None:
    experiment = load_experiment(example)
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    free_form = set(FREE_FORM)
    if experiment.toolchain.name != "onnxruntime":
        free_form.add("toolchain.config")
    else:
        OnnxRuntimeConfig.model_validate(experiment.toolchain.config)
    text = _doc_text()
    missing = sorted(path for path in _key_paths(data, "", free_form) if f"`{path}`" not in text)
    assert not missing, f"{example.name} uses keys not in docs/experiments.md: {missing}"


def test_generator_fails_clearly_without_example(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(docs, "EXAMPLE", ROOT / "examples" / "no-such-example.yaml")
    assert docs.main() == 1
    assert "no-such-example.yaml" in capsys.readouterr().err


def test_render_is_deterministic() -> None:
    assert docs.render() == docs.render()
