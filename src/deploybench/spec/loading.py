"""Read experiments from YAML or JSON and turn validation errors into fix-it messages."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from deploybench.errors import SpecError
from deploybench.spec.experiment import Experiment

MAX_SPEC_BYTES = 1 << 20


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """Walk field names down from ``root`` to the model class that owns ``loc``'s last key."""
    current: type[BaseModel] | None = root
    for key in loc:
        if current is None or not isinstance(key, str) or key not in current.model_fields:
            return current if isinstance(key, str) else None
        annotation = current.model_fields[key].annotation
        current = _first_model(annotation)
    return current


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _format_loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for key in loc:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif key.startswith(("function-", "tagged-union")):
            continue  # pydantic's internal validator names say nothing to a user
        else:
            parts.append(("." if parts else "") + key)
    return "".join(parts) or "(top level)"


def format_validation_error(
    error: ValidationError, root: type[BaseModel], prefix: str = ""
) -> list[str]:
    """One line per problem: the field path, what is wrong, and what is allowed."""
    lines: list[str] = []
    for item in error.errors():
        loc = tuple(item["loc"])
        path = (prefix + "." if prefix else "") + _format_loc(loc)
        if item["type"] == "extra_forbidden":
            owner = _model_at(root, loc[:-1])
            allowed = sorted(owner.model_fields) if owner else []
            key = str(loc[-1])
            hint = difflib.get_close_matches(key, allowed, n=1)
            message = f"{path}: unknown key '{key}'"
            if hint:
                message += f" (did you mean '{hint[0]}'?)"
            if allowed:
                message += f"; allowed keys: {', '.join(allowed)}"
            lines.append(message)
            continue
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "required field is missing"
        got = item.get("input")
        if item["type"] not in ("missing",) and not isinstance(got, dict | list):
            message += f" (got {got!r})"
        lines.append(f"{path}: {message}")
    return lines


def parse_experiment(
    data: Any, base_dir: Path | None = None, source: str = "experiment"
) -> Experiment:
    """Validate a mapping (already parsed from YAML/JSON) into an :class:`Experiment`."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: the top level must be a mapping with keys such as name, problem, "
            f"toolchain; got {type(data).__name__}"
        )
    try:
        return Experiment.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        lines = format_validation_error(exc, Experiment)
        raise SpecError(f"{source} is invalid:\n  " + "\n  ".join(lines)) from None


def load_experiment(path: Path) -> Experiment:
    """Load an experiment file; relative paths inside it start at the file's folder."""
    if not path.is_file():
        raise SpecError(f"{path}: no such experiment file; check the path")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: larger than {MAX_SPEC_BYTES} bytes; is this an experiment file?")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            f"{path}: malformed YAML{where}: {problem}; fix the syntax (indentation, ':' "
            "after keys, closed brackets and quotes)"
        ) from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text; is this an experiment file?") from None
    return parse_experiment(data, base_dir=path.resolve().parent, source=str(path))
