"""Workflow steps shared by the ONNX-based toolchains, and how a list of steps is checked and
run. Toolchain-specific steps (ONNX Runtime quantization, OpenVINO conversion...) subclass
:class:`WorkflowStep` in their own package."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from deploybench.plugins.availability import distribution_version
from deploybench.toolchains.base import Finding, Severity
from deploybench.toolchains.workflow.state import ONNX, TORCH, ModelArtifact, WorkflowState


class WorkflowStep(BaseModel, abc.ABC):
    """One configurable step: which model formats it takes and which one it gives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    takes: ClassVar[tuple[str, ...]]
    gives: ClassVar[str]
    # Python modules the step imports, checked before anything runs.
    needs: ClassVar[tuple[str, ...]] = ()

    @property
    def label(self) -> str:
        """The step's name as written in ``pipeline`` (its ``step`` field)."""
        return str(getattr(self, "step"))  # noqa: B009 (every subclass declares it)

    @abc.abstractmethod
    def run(self, state: WorkflowState) -> None:
        """Transform ``state.current`` through ``state.pipeline`` (so the step is logged)."""

    def findings(self, state_format: str) -> list[Finding]:
        """Step-specific problems known before running (e.g. a missing package)."""
        del state_format
        return []


def chain_findings(
    steps: Sequence[WorkflowStep], start: str, runs: Sequence[str], toolchain: str
) -> list[Finding]:
    """Whether ``steps`` can carry a ``start``-format model to a format ``toolchain`` runs:
    each step must take what the previous one gives, and its packages must be installed."""
    import importlib.util

    findings: list[Finding] = []
    current = start
    for index, step in enumerate(steps):
        where = f"toolchain.config.pipeline[{index}] ({step.label})"
        if current not in step.takes:
            producer = _producer_hint(step.takes, current)
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="pipeline-format-mismatch",
                    subject=step.label,
                    message=f"{where} takes {' or '.join(step.takes)} models but receives a "
                    f"{current} model",
                    fix=producer or "reorder the steps",
                )
            )
            return findings
        for module in step.needs:
            if importlib.util.find_spec(module) is None:
                findings.append(
                    Finding(
                        severity=Severity.ERROR,
                        code="step-unavailable",
                        subject=step.label,
                        message=f"{where} needs the Python package '{module}', which is not "
                        "installed",
                        fix=f"pip install {module} (or the 'workflows' extra of deploybench)",
                    )
                )
        findings.extend(step.findings(current))
        current = step.gives
    if current not in runs:
        findings.append(
            Finding(
                severity=Severity.ERROR,
                code="pipeline-ends-in-wrong-format",
                message=f"the pipeline leaves a {current} model but {toolchain} runs "
                f"{' or '.join(runs)} models",
                fix="add '- step: export-onnx' to the pipeline"
                if current == TORCH and ONNX in runs
                else "end the pipeline with a conversion",
            )
        )
    return findings


def require_chain(
    steps: Sequence[WorkflowStep], start: str, runs: Sequence[str], toolchain: str
) -> None:
    """Raise :class:`CompatibilityError` with every error of :func:`chain_findings` (a build
    called without the checks must not start a pipeline that cannot finish)."""
    from deploybench.errors import CompatibilityError

    refused = [
        f for f in chain_findings(steps, start, runs, toolchain) if f.severity is Severity.ERROR
    ]
    if refused:
        raise CompatibilityError("; ".join(f.render() for f in refused))


def _producer_hint(wanted: Sequence[str], current: str) -> str | None:
    if current == TORCH and ONNX in wanted:
        return "add '- step: export-onnx' before it"
    return None


def run_workflow(steps: Sequence[WorkflowStep], state: WorkflowState) -> ModelArtifact:
    """Run ``steps`` in order on ``state`` and return the final model."""
    for step in steps:
        if state.current.format not in step.takes:
            # chain_findings refuses this at check time; this guards direct build() calls.
            from deploybench.toolchains.pipeline import BuildError

            raise BuildError(
                step.label,
                f"takes {' or '.join(step.takes)} models but receives {state.current.format}",
                "",
            )
        step.run(state)
    return state.current


class ExportOnnxStep(WorkflowStep):
    """torch → ONNX with ``torch.onnx.export``, input and output names from the problem."""

    takes: ClassVar[tuple[str, ...]] = (TORCH,)
    gives: ClassVar[str] = ONNX
    needs: ClassVar[tuple[str, ...]] = ("torch", "onnx")

    step: Literal["export-onnx"]
    opset: int = Field(default=17, ge=9, le=21, description="ONNX opset to export to.")
    exporter: Literal["torchscript", "dynamo"] = Field(
        default="torchscript",
        description="torchscript: the tracing exporter (no extra package); dynamo: the "
        "torch.export-based exporter (needs onnxscript; opset 18 or later).",
    )
    dynamic_batch: bool = Field(
        default=True, description="Export the first dimension as symbolic 'N'."
    )

    def findings(self, state_format: str) -> list[Finding]:
        """The dynamo exporter needs onnxscript and opset 18 or later."""
        import importlib.util

        del state_format
        found: list[Finding] = []
        if self.exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
            found.append(
                Finding(
                    severity=Severity.ERROR,
                    code="step-unavailable",
                    subject=self.label,
                    message="the dynamo ONNX exporter needs the 'onnxscript' package",
                    fix="pip install onnxscript, or use exporter: torchscript",
                )
            )
        if self.exporter == "dynamo" and self.opset < 18:
            found.append(
                Finding(
                    severity=Severity.ERROR,
                    code="invalid-opset",
                    subject=self.label,
                    message=f"the dynamo exporter writes opset 18 or later, not {self.opset}",
                    fix="set opset: 18 or use exporter: torchscript",
                )
            )
        return found

    def run(self, state: WorkflowState) -> None:
        """Rebuild the module from its state dict and export it."""
        from deploybench.toolchains.workflow.onnx_steps import export_onnx

        torch_version = distribution_version("torch") or "not installed"
        state.tool_versions["torch"] = torch_version
        parameters = self.model_dump(exclude={"step"})
        with state.pipeline.step(
            "export-onnx", "torch.onnx", torch_version, state.current.files(), parameters
        ) as record:
            target = record.output(state.workdir / "model.onnx")
            for line in export_onnx(state.problem, target, self):
                record.log(line)
        state.current = ModelArtifact(ONNX, target)
        state.keep(target, "exported-model")


class SimplifyStep(WorkflowStep):
    """ONNX → ONNX graph simplification (constant folding, redundant node removal), checked
    against the unsimplified model on dataset samples with ONNX Runtime when it is installed."""

    takes: ClassVar[tuple[str, ...]] = (ONNX,)
    gives: ClassVar[str] = ONNX

    step: Literal["simplify"]
    tool: Literal["onnxsim", "onnxslim"] = Field(
        default="onnxsim", description="onnxsim (onnx-simplifier) or onnxslim."
    )
    verify_samples: int = Field(
        default=16,
        ge=0,
        description="Dataset samples both graphs run on to check the answers did not change "
        "(0: skip).",
    )

    def findings(self, state_format: str) -> list[Finding]:
        """The chosen tool must be installed."""
        import importlib.util

        del state_format
        if importlib.util.find_spec(self.tool) is None:
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="step-unavailable",
                    subject=self.label,
                    message=f"simplify with {self.tool} needs the '{self.tool}' package",
                    fix=f"pip install 'deploybench[workflows]' (or pip install {self.tool})",
                )
            ]
        return []

    def run(self, state: WorkflowState) -> None:
        """Simplify into ``simplified.onnx`` and log the node counts and the check."""
        from deploybench.toolchains.workflow.onnx_steps import simplify

        version = distribution_version(self.tool) or "not installed"
        state.tool_versions[self.tool] = version
        source = state.current.path
        with state.pipeline.step(
            "simplify", self.tool, version, state.current.files(), {"tool": self.tool}
        ) as record:
            target = record.output(state.workdir / "simplified.onnx")
            for line in simplify(state.problem, source, target, self.tool, self.verify_samples):
                record.log(line)
        state.current = ModelArtifact(ONNX, target)
        state.keep(target, "simplified-model")
