"""A problem made concrete: files located, verified, hashed and inspected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deploybench.problems.datasets import load_npz
from deploybench.problems.tensors import TensorSpec
from deploybench.spec.problem import TaskKind


class ResolvedProblem(BaseModel):
    """Everything toolchains and the runner need to know about a problem's files."""

    model_config = ConfigDict(frozen=True)

    model_label: str
    model_path: Path
    model_format: str
    model_sha256: str
    model_size_bytes: int
    dataset_label: str
    dataset_path: Path
    dataset_sha256: str
    task: TaskKind
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: int | None
    operators: list[str]
    n_samples: int
    expected_outputs_path: Path | None = None
    torch_module: str | None = Field(
        default=None, description="PyTorch models: 'file.py:ClassName' of the state dict."
    )
    torch_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="PyTorch models: constructor keyword arguments."
    )

    def load_inputs(self, limit: int | None = None) -> dict[str, np.ndarray]:
        """The model-input arrays of the dataset (first ``limit`` samples)."""
        arrays = load_npz(self.dataset_path)
        return {spec.name: arrays[spec.name][:limit] for spec in self.inputs}

    def load_truth(self, limit: int | None = None) -> np.ndarray | None:
        """``labels`` or ``targets`` when the dataset has them."""
        arrays = load_npz(self.dataset_path)
        for key in ("labels", "targets"):
            if key in arrays:
                return arrays[key][:limit]
        return None
