"""Generate ``docs/experiments.md``, the reference of the experiment file, from the spec models.

Run ``python -m deploybench.docs > docs/experiments.md`` (``make docs``). The output depends only
on the models, their field metadata and the bundled example, so it is deterministic; a test
compares it with the committed file.
"""

from __future__ import annotations

import json
import re
import sys
import types
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ByteSize
from pydantic.fields import FieldInfo

from deploybench.runner.functional import default_semantic_spec
from deploybench.spec import Distance, Experiment, TaskKind
from deploybench.spec.measurement import PROFILE_DEFAULTS, MeasurementPlan, Profile
from deploybench.spec.semantic import _UPPER_BOUND
from deploybench.toolchains.onnxruntime.config import OnnxRuntimeConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits-mlp-ort-int8.yaml"
_CONSTRAINTS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
_LENGTHS = (("min_length", "at least {} item(s)"), ("max_length", "at most {} item(s)"))
_RESOLVED = {p: MeasurementPlan(profile=p).resolved().model_dump() for p in Profile}
# Measurement fields left out in a plan and filled in by its profile.
_FROM_PROFILE = [
    k for k, v in MeasurementPlan().model_dump().items() if v != _RESOLVED[Profile.DEFAULT][k]
]
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", Any: "any"}

INTRO = """\
# Experiment files

An experiment file (YAML or JSON) describes one benchmark: a *problem* (model, dataset, task),
the *toolchain* that deploys the model, the *target* it runs on, the *environment* of the
measured process, the *measurement* plan and how *semantic preservation* is judged.
`deploybench run FILE` runs it; `deploybench schema` prints the JSON Schema. Unknown keys are
errors, with a suggestion of the closest allowed key.

This page is generated from the schema by `python -m deploybench.docs` (`make docs`);
do not edit it by hand.
"""

SHORT_FORMS = """\
## Short forms

- `problem.model: zoo:NAME` and `problem.dataset: zoo:NAME` name an open problem's artifact
  shipped by deploybench (`deploybench zoo list`); same as `{zoo: NAME}`.
- `problem.model: path/to/model.onnx` is the same as `{path: path/to/model.onnx}`; the mapping
  form also takes `sha256:` (the file is refused when its digest differs) and, for models,
  `format:`. Datasets work the same way with an `.npz` file.
- Relative paths (`problem.model.path`, `problem.dataset.path`, `problem.expected_outputs`)
  resolve against the folder of the experiment file, not the current directory.
- Every `measurement` field whose default is *from profile* takes its value from
  `measurement.profile` (see [Profiles](#profiles)).
"""


def _cell(text: str) -> str:
    """Make ``text`` safe for a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    """Render a Python value as inline code, in JSON/YAML notation."""
    if isinstance(value, Enum):
        value = value.value
    return f"`{json.dumps(value, sort_keys=True, default=str)}`"


def _type_name(annotation: Any) -> str:
    """Human-readable name of a field's type annotation."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is Annotated:  # e.g. a discriminated union of workflow steps
        return _type_name(args[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args)
    if origin is Literal:
        return _type_name(type(args[0]))
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    if annotation is ByteSize:
        return "byte size"
    if annotation is Path:
        return "path"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel | Enum):
        return annotation.__name__
    return _SCALARS.get(annotation, str(annotation))


def _choices(annotation: Any) -> list[Any]:
    """Allowed values of Literal and Enum types found anywhere in ``annotation``."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [member.value for member in annotation]
    return [value for arg in get_args(annotation) for value in _choices(arg)]


def _allowed(field: FieldInfo) -> str:
    """Constraints of a field: bounds, lengths, pattern and enumerated values."""
    parts: list[str] = []
    choices = _choices(field.annotation)
    if choices:
        parts.append("one of " + ", ".join(_code(value) for value in choices))
    for meta in field.metadata:
        for attr, symbol in _CONSTRAINTS:
            if getattr(meta, attr, None) is not None:
                parts.append(f"{symbol} {getattr(meta, attr)}")
        for attr, template in _LENGTHS:
            if getattr(meta, attr, None) is not None:
                parts.append(template.format(getattr(meta, attr)))
        if getattr(meta, "pattern", None) is not None:
            parts.append(f"matches `{meta.pattern}`")
    return "; ".join(parts)


def _default(path: str, field: FieldInfo) -> str:
    """Default of a field; nested-model defaults show only their non-default keys."""
    if field.is_required():
        return "required"
    if path.startswith("measurement.") and path.split(".")[1] in _FROM_PROFILE:
        return "from profile"
    value = field.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_defaults=True)
    return _code(value)


def _models(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models referenced by ``annotation`` (directly or inside a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models(arg)]


def _summary(cls: type) -> str:
    """The docstring of ``cls``, whitespace collapsed."""
    return " ".join((cls.__doc__ or "").split())


def _sections(model: type[BaseModel], prefix: str, title: str, note: str = "") -> list[str]:
    """One Markdown section for ``model`` at ``prefix``, then one per nested model."""
    where = f" (`{prefix}`)" if prefix else " (top level)"
    lines = [f"## {title}{where}", "", (_summary(model) + " " + note).strip(), ""]
    lines += ["| Field | Type | Default | Allowed | Description |", "|---|---|---|---|---|"]
    nested: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        description = field.description or ""
        for sub in _models(field.annotation):
            description = description or _summary(sub)
            nested += _sections(sub, path, sub.__name__)
        cells = [f"`{path}`", _type_name(field.annotation), _default(path, field)]
        cells += [_allowed(field), description]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return [*lines, "", *nested]


def _profiles() -> list[str]:
    """Table of the measurement values each profile supplies."""
    profiles = list(Profile)
    lines = ["## Profiles", "", _summary(Profile), ""]
    lines.append("| Field | " + " | ".join(f"`{p.value}`" for p in profiles) + " |")
    lines.append("|---" * (len(profiles) + 1) + "|")
    for key in _FROM_PROFILE:
        values = " | ".join(_code(_RESOLVED[p][key]) for p in profiles)
        derived = "" if key in PROFILE_DEFAULTS[Profile.DEFAULT] else " (derived)"
        lines.append(f"| `measurement.{key}`{derived} | {values} |")
    return [*lines, ""]


def _distances() -> list[str]:
    """Table of the distances, their definitions and allowed threshold ranges."""
    definitions = dict(re.findall(r"- ``(\w+)``: (.+)", Distance.__doc__ or ""))
    lines = ["## Distances", "", "`semantic_preservation.distance`: two outputs are identical"]
    lines += ["when `distance(deployed, reference) <= threshold`.", ""]
    lines += ["| Distance | Definition | `threshold` range |", "|---|---|---|"]
    for distance in Distance:
        upper = _UPPER_BOUND.get(distance)
        bound = f"0 <= threshold < {upper}" if upper is not None else "finite, >= 0"
        definition = _cell(definitions.get(distance.value, ""))
        lines.append(f"| `{distance.value}` | {definition} | {bound} |")
    return [*lines, ""]


def _tasks() -> list[str]:
    """Table of the task kinds with the semantic preservation used when none is given."""
    lines = ["## Task kinds", "", f"`problem.task`: {_summary(TaskKind)}", ""]
    lines += ["When `semantic_preservation` is omitted, the default depends on the task:", ""]
    lines += ["| Task | Default `semantic_preservation` |", "|---|---|"]
    for task in TaskKind:
        spec = default_semantic_spec(task)
        rule = f"`{{distance: {spec.distance.value}, threshold: {spec.threshold:g}}}`"
        lines.append(f"| `{task.value}` | {rule} |")
    return [*lines, ""]


def _probes() -> list[str]:
    """The probes attached by default."""
    default = Experiment.model_fields["measurement"].get_default(call_default_factory=True)
    names = ", ".join(f"`{name}`" for name in default.probes)
    return ["## Probes", "", f"`measurement.probes` defaults to {names}.", ""]


def render() -> str:
    """The whole Markdown reference, ending with one newline."""
    if not EXAMPLE.is_file():
        raise FileNotFoundError(f"{EXAMPLE}: example experiment missing; run from a checkout")
    example = EXAMPLE.read_text(encoding="utf-8").rstrip("\n")
    lines = [INTRO, "## Example", "", f"`examples/{EXAMPLE.name}`:", "", "```yaml", example]
    lines += ["```", "", SHORT_FORMS]
    lines += _sections(Experiment, "", "Experiment")
    note = "With `toolchain.name: onnxruntime`, `toolchain.config` takes these keys."
    lines += _sections(OnnxRuntimeConfig, "toolchain.config", "ONNX Runtime options", note)
    lines += _profiles() + _distances() + _tasks() + _probes()
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    """Print the reference to stdout; exit status 1 with a message when it cannot be built."""
    try:
        sys.stdout.write(render())
    except FileNotFoundError as exc:
        print(f"deploybench.docs: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
