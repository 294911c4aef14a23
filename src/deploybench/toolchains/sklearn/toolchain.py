"""scikit-learn toolchain: the reference run of ``.skops`` tree ensembles (predict_proba)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from deploybench.plugins.availability import Availability, distribution_version
from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import (
    Deployable,
    DeployableFile,
    Finding,
    Severity,
    Toolchain,
)
from deploybench.toolchains.pipeline import Pipeline
from deploybench.toolchains.sklearn.config import SklearnConfig

_SESSION_FACTORY = "deploybench.toolchains.sklearn.session:open_session"
MODEL_FILE = "model.skops"


class SklearnToolchain(Toolchain):
    """scikit-learn estimators saved with skops, run in the worker with ``predict_proba``."""

    name: ClassVar[str] = "sklearn"
    summary: ClassVar[str] = (
        "scikit-learn (CPU): tree-ensemble classifiers saved with skops, run with "
        "predict_proba; the reference run of sklearn models."
    )
    config_model: ClassVar[type[BaseModel]] = SklearnConfig
    input_formats: ClassVar[tuple[str, ...]] = ("sklearn",)
    capabilities: ClassVar[tuple[str, ...]] = ("threads",)

    @classmethod
    def availability(cls) -> Availability:
        """Needs scikit-learn (a core dependency) and skops."""
        return Availability.of_modules("sklearn", "skops", extra="embedded")

    @classmethod
    def tool_version(cls) -> str | None:
        """Installed scikit-learn version."""
        return distribution_version("scikit-learn")

    def reference_config(self) -> BaseModel:
        """The only configuration: the estimator as scikit-learn runs it."""
        return SklearnConfig()

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Format and target: a sklearn model, on a target that runs Python sessions."""
        findings: list[Finding] = []
        if problem.model_format != "sklearn":
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="unsupported-format",
                    message=f"sklearn takes scikit-learn models saved with skops (.skops), not "
                    f"{problem.model_format}",
                    fix="use the onnxruntime toolchain for ONNX models, pytorch for torch ones",
                )
            )
        if "python-session" not in target.executes:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="target-cannot-run-python",
                    message=f"target '{target.name}' cannot run a Python scikit-learn session",
                    fix="pick a host target such as 'local'",
                )
            )
        return findings

    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Copy the ``.skops`` file into ``workdir`` and load it back once (safely)."""
        from deploybench.problems.sklearn_model import load_sklearn_model

        workdir.mkdir(parents=True, exist_ok=True)
        sklearn_version = distribution_version("scikit-learn") or "unknown"
        skops_version = distribution_version("skops") or "unknown"
        pipeline = Pipeline()
        with pipeline.step(
            "copy-model", "skops", skops_version, {"model": problem.model_path}
        ) as step:
            entry = step.output(workdir / MODEL_FILE)
            shutil.copyfile(problem.model_path, entry)
            model = load_sklearn_model(entry)
            trees = len(getattr(model, "estimators_", [model]))
            step.log(
                f"{type(model).__name__}: {trees} tree(s), {model.n_features_in_} features, "
                f"{len(model.classes_)} classes (loaded with the tree-ensemble allowlist)"
            )
        deployable = Deployable(
            toolchain=self.name,
            kind="python-session",
            session_factory=_SESSION_FACTORY,
            entry=entry.name,
            files=[DeployableFile.of(workdir, entry, "model")],
            inputs=problem.inputs,
            outputs=problem.outputs,
            steps=pipeline.steps,
            tool_versions={"scikit-learn": sklearn_version, "skops": skops_version},
            root=workdir,
        )
        deployable.write_manifest()
        return deployable
