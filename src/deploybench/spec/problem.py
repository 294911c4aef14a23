"""The inference problem: a model, a dataset, a task kind and optional expected outputs."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from deploybench.spec.base import SpecModel

ZOO_PREFIX = "zoo:"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TaskKind(StrEnum):
    """What the model computes; decides which functional metrics apply."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    DETECTION = "detection"
    SEGMENTATION = "segmentation"
    EMBEDDING = "embedding"


def _resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve a relative path against the experiment file's folder (passed as context)."""
    if value is None:
        return None
    base = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


class _FileOrZooRef(SpecModel):
    """A reference to a file on disk or to an open problem shipped by deploybench."""

    zoo: str | None = Field(default=None, description="Name of an open (zoo) artifact.")
    path: Path | None = Field(
        default=None, description="File path; relative paths start at the experiment's folder."
    )
    sha256: str | None = Field(
        default=None, description="Expected sha256; the file is refused when it differs."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        # `model: zoo:digits-mlp` and `model: ./m.onnx` are the short forms users write.
        if isinstance(data, str):
            if data.startswith(ZOO_PREFIX):
                return {"zoo": data[len(ZOO_PREFIX) :]}
            return {"path": data}
        return data

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve_path(value, info)

    @field_validator("sha256")
    @classmethod
    def _check_sha(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value):
            raise ValueError("must be 64 lowercase hexadecimal characters (a sha256 digest)")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> _FileOrZooRef:
        if (self.zoo is None) == (self.path is None):
            raise ValueError("give exactly one of 'zoo' (e.g. zoo:digits) or 'path'")
        return self

    @property
    def label(self) -> str:
        """Human-readable form used in messages and tables."""
        return f"{ZOO_PREFIX}{self.zoo}" if self.zoo is not None else str(self.path)


class InputDecl(SpecModel):
    """A declared model input (PyTorch state dicts carry no signature)."""

    name: str = Field(description="Input name; the dataset array of the same name feeds it.")
    shape: list[int | str | None] = Field(
        min_length=1, description="Shape; the first dimension is the batch (e.g. [N, 64])."
    )
    dtype: str = Field(default="float32", description="numpy dtype name.")


class ModelRef(_FileOrZooRef):
    """The input model: ``zoo:NAME``, ``{path: model.onnx}``, or a PyTorch state dict
    ``{format: torch, path: weights.pt, module: net.py:Net, kwargs: {...}, inputs: [...]}``."""

    format: str | None = Field(
        default=None,
        description="Model format (onnx, torch, sklearn; 'pytorch' is read as torch). "
        "Detected from the file suffix (.onnx, .pt/.pth/.pt2, .skops) when omitted.",
    )
    module: str | None = Field(
        default=None,
        description="PyTorch models: 'file.py:ClassName' defining the nn.Module whose "
        "state dict 'path' holds; the file path starts at the experiment's folder.",
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="PyTorch models: constructor keyword arguments."
    )
    inputs: list[InputDecl] | None = Field(
        default=None,
        description="PyTorch models: the forward() arguments in order (name, shape, dtype).",
    )
    outputs: list[str] | None = Field(
        default=None,
        description="PyTorch models: names of the outputs in order (default: output, or "
        "output_0, output_1, ... for tuples).",
    )

    @field_validator("format")
    @classmethod
    def _normalize_format(cls, value: str | None) -> str | None:
        return "torch" if value == "pytorch" else value

    @field_validator("module")
    @classmethod
    def _resolve_module(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        file, sep, class_name = value.rpartition(":")
        if not sep or not file or not class_name.isidentifier():
            raise ValueError("must be 'path/to/file.py:ClassName'")
        resolved = _resolve_path(Path(file), info)
        return f"{resolved}:{class_name}"

    @model_validator(mode="after")
    def _torch_fields(self) -> ModelRef:
        torch_only = self.module is not None or self.inputs is not None or self.kwargs
        if self.zoo is not None and (torch_only or self.outputs is not None):
            raise ValueError(
                "'module', 'kwargs', 'inputs' and 'outputs' are for a user's PyTorch model; "
                "an open (zoo) model knows its own"
            )
        if self.path is None or (not torch_only and self.format != "torch"):
            return self
        if self.format not in (None, "torch"):
            raise ValueError("'module', 'kwargs' and 'inputs' only apply to format: torch")
        if self.module is None or self.inputs is None:
            raise ValueError(
                "a PyTorch model needs 'module' (file.py:ClassName) and 'inputs' "
                "(name, shape, dtype of each forward() argument) besides the state dict 'path'"
            )
        return self


class DatasetRef(_FileOrZooRef):
    """The dataset: ``zoo:NAME`` or an ``.npz`` with one array per model input plus
    ``labels`` (classification, segmentation) or ``targets`` (regression)."""


class Problem(SpecModel):
    """Model + dataset (+ expected outputs) and the task kind."""

    model: ModelRef
    dataset: DatasetRef
    task: TaskKind | None = Field(
        default=None,
        description="Task kind. Required for user models; open problems know their own.",
    )
    expected_outputs: Path | None = Field(
        default=None,
        description=".npz with one array per model output, compared like semantic preservation.",
    )

    @field_validator("expected_outputs")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve_path(value, info)

    @model_validator(mode="after")
    def _task_for_user_models(self) -> Problem:
        if self.model.path is not None and self.task is None:
            raise ValueError(
                "'task' is required for a user-provided model; "
                f"use one of: {', '.join(t.value for t in TaskKind)}"
            )
        return self
