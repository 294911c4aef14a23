"""Deployment workflows (REQ-00022): a toolchain's pipeline spelled out as configurable steps.

A toolchain config may list its steps under ``pipeline`` (for example torch → ONNX export →
onnxsim → ONNX Runtime static INT8 → graph optimization); without it the toolchain derives
its default pipeline from its flat options. Either way the steps that ran, with their
parameters, versions and artifact hashes, are recorded in the deployable.
"""

from deploybench.toolchains.workflow.state import ModelArtifact, WorkflowState
from deploybench.toolchains.workflow.steps import (
    ExportOnnxStep,
    SimplifyStep,
    WorkflowStep,
    chain_findings,
    require_chain,
    run_workflow,
)

__all__ = [
    "ExportOnnxStep",
    "ModelArtifact",
    "SimplifyStep",
    "WorkflowState",
    "WorkflowStep",
    "chain_findings",
    "require_chain",
    "run_workflow",
]
