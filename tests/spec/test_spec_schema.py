"""The JSON Schema of experiment files."""

from __future__ import annotations

import json
from typing import Any

from deploybench.spec import Experiment, experiment_json_schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (possibly wrapped in anyOf with null)."""
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        return schema["$defs"][name]
    for option in node.get("anyOf", []):
        if "$ref" in option:
            return _resolve(schema, option)
    return node


def test_schema_is_json_serializable_object() -> None:
    schema = experiment_json_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert schema["type"] == "object"
    assert schema["title"] == "Experiment"


def test_schema_top_level_properties() -> None:
    schema = experiment_json_schema()
    assert set(schema["properties"]) == set(Experiment.model_fields)
    assert {
        "name",
        "problem",
        "toolchain",
        "target",
        "environment",
        "measurement",
        "semantic_preservation",
    } <= set(schema["properties"])
    assert set(schema["required"]) == {"name", "problem", "toolchain"}
    assert schema["additionalProperties"] is False


def test_schema_refs_resolve_and_nested_models_are_strict() -> None:
    schema = experiment_json_schema()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in schema["$defs"]
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object":
            assert definition.get("additionalProperties") is False, name


def test_schema_describes_enums_and_fields() -> None:
    schema = experiment_json_schema()
    measurement = _resolve(schema, schema["properties"]["measurement"])
    assert "profile" in measurement["properties"]
    profile = _resolve(schema, measurement["properties"]["profile"])
    assert set(profile["enum"]) == {"quick", "default", "rigorous"}
    semantic = _resolve(schema, schema["properties"]["semantic_preservation"])
    distance = _resolve(schema, semantic["properties"]["distance"])
    assert set(distance["enum"]) == {"max_abs", "rel", "cosine", "topk", "label"}
    toolchain = _resolve(schema, schema["properties"]["toolchain"])
    assert toolchain["properties"]["name"]["description"]
