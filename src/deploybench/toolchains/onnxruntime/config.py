"""Configuration of the ONNX Runtime toolchain."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import ConfigDict, Field, model_validator

from deploybench.toolchains.onnxruntime.steps import OrtStep, QuantizeOptions

GraphOptimization = Literal["disabled", "basic", "extended", "all"]
Quantization = Literal["none", "dynamic-int8", "static-int8"]
# Options that describe model transformations: an explicit pipeline replaces them.
PIPELINE_OPTIONS = (
    "graph_optimization",
    "quantization",
    "per_channel",
    "reduce_range",
    "activation_type",
    "calibration_samples",
    "calibration_method",
)


class OnnxRuntimeConfig(QuantizeOptions):
    """Every option of the ONNX Runtime deployment pipeline and session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    graph_optimization: GraphOptimization = Field(
        default="all",
        description="Graph optimization level applied offline; the optimized model is saved.",
    )
    quantization: Quantization = Field(
        default="none",
        description="none, dynamic-int8 (weights int8, activations at run time) or "
        "static-int8 (QDQ, calibrated on the problem's dataset).",
    )
    intra_op_threads: int | None = Field(
        default=None, ge=0, description="Intra-op threads; default: environment.threads."
    )
    inter_op_threads: int | None = Field(default=None, ge=0, description="Inter-op threads.")
    execution_mode: Literal["sequential", "parallel"] = Field(
        default="sequential", description="Run independent nodes sequentially or in parallel."
    )
    execution_providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        min_length=1,
        description="Execution providers in priority order; must be available on the host.",
    )
    pipeline: list[OrtStep] | None = Field(
        default=None,
        description="Explicit deployment workflow, in order: export-onnx (torch models), "
        "simplify, quantize, optimize. Replaces graph_optimization and the quantization "
        "options; without it the default pipeline is derived from them.",
    )

    @model_validator(mode="after")
    def _pipeline_or_options(self) -> Self:
        both = sorted(set(PIPELINE_OPTIONS).intersection(self.model_fields_set))
        if self.pipeline is not None and both:
            raise ValueError(
                f"set {', '.join(both)} inside the pipeline's steps (quantize, optimize), "
                "not beside an explicit pipeline"
            )
        return self
