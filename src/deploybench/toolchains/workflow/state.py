"""What flows between the steps of a deployment workflow."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploybench.problems.resolved import ResolvedProblem
from deploybench.toolchains.base import DeployableFile
from deploybench.toolchains.pipeline import Pipeline

# Formats a model can be in between steps.
TORCH = "torch"
ONNX = "onnx"
OPENVINO_IR = "openvino-ir"
TFLITE = "tflite"


@dataclass(frozen=True)
class ModelArtifact:
    """The model as the previous step left it: its format, main file and companion files
    (OpenVINO weights, ONNX external data)."""

    format: str
    path: Path
    companions: tuple[Path, ...] = ()

    def files(self) -> dict[str, Path]:
        """The main file and its companions by name (a step's hashed inputs)."""
        return {path.name: path for path in (self.path, *self.companions)}


@dataclass
class WorkflowState:
    """Shared by the steps of one build: the problem, the folder, the logged pipeline, the
    current model and what the deployable will list."""

    problem: ResolvedProblem
    workdir: Path
    pipeline: Pipeline
    current: ModelArtifact
    files: list[DeployableFile] = field(default_factory=list)
    tool_versions: dict[str, str] = field(default_factory=dict)
    # Facts steps establish for the session and the run record (e.g. the quantization used).
    facts: dict[str, Any] = field(default_factory=dict)

    def keep(self, path: Path, role: str) -> None:
        """List ``path`` (inside the work folder) as a file of the deployable."""
        self.files = [item for item in self.files if item.path != path.name]
        self.files.append(DeployableFile.of(self.workdir, path, role))

    def validate_onnx(self, onnx_version: str) -> None:
        """The ``validate`` step of ONNX problems: copy the model into the work folder and run
        the full ONNX checker on the copy, which becomes the current model."""
        source = self.problem.model_path
        with self.pipeline.step("validate", "onnx", onnx_version, {"input.onnx": source}) as step:
            import onnx

            current = step.output(self.workdir / "model.onnx")
            shutil.copyfile(source, current)
            onnx.checker.check_model(str(current), full_check=True)
            operators = ", ".join(self.problem.operators)
            step.log(f"opset {self.problem.opset}; operators: {operators}")
        self.current = ModelArtifact(ONNX, current)
        self.keep(current, "model")

    @classmethod
    def start(cls, problem: ResolvedProblem, workdir: Path) -> WorkflowState:
        """The state before the first step: the problem's own model file."""
        workdir.mkdir(parents=True, exist_ok=True)
        return cls(
            problem=problem,
            workdir=workdir,
            pipeline=Pipeline(),
            current=ModelArtifact(problem.model_format, problem.model_path),
        )
