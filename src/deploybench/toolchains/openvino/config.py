"""Configuration of the OpenVINO toolchain."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deploybench.toolchains.openvino.steps import NncfQuantizeStep, OpenVinoStep

Precision = Literal["f32", "bf16", "f16", "int8"]
PerformanceHint = Literal["latency", "throughput"]


class OpenVinoConfig(BaseModel):
    """Every option of the OpenVINO deployment pipeline and of the compiled model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    precision: Precision = Field(
        default="f32",
        description="f32, bf16 or f16: the CPU plugin's inference precision "
        "(INFERENCE_PRECISION_HINT; bf16 and f16 need CPU support); int8: NNCF post-training "
        "quantization calibrated on the problem's dataset, the rest of the graph in f32.",
    )
    hint: PerformanceHint = Field(
        default="latency",
        description="PERFORMANCE_HINT: latency (one stream) or throughput (several streams; "
        "the harness still times one request at a time).",
    )
    streams: int | Literal["auto"] = Field(
        default="auto",
        description="NUM_STREAMS: a positive integer, or auto to let the hint decide.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="INFERENCE_NUM_THREADS; default: environment.threads, else OpenVINO's own.",
    )
    calibration_samples: int = Field(
        default=300,
        ge=1,
        description="Dataset samples NNCF calibrates int8 on (its subset_size).",
    )
    quantization_preset: Literal["performance", "mixed"] = Field(
        default="performance",
        description="NNCF preset for int8: performance (symmetric weights and activations) or "
        "mixed (asymmetric activations, better for non-ReLU activations).",
    )

    pipeline: list[OpenVinoStep] | None = Field(
        default=None,
        description="Explicit deployment workflow, in order: export-onnx and simplify (torch "
        "models through ONNX), convert (ONNX or torch to IR), quantize (NNCF int8). Without "
        "it: convert, then quantize when precision is int8.",
    )

    @property
    def quantizes(self) -> bool:
        """Whether the workflow quantizes to int8 (precision int8 or a quantize step)."""
        if self.pipeline is None:
            return self.precision == "int8"
        return any(isinstance(step, NncfQuantizeStep) for step in self.pipeline)

    @model_validator(mode="after")
    def _pipeline_or_options(self) -> Self:
        if self.pipeline is None:
            return self
        both = sorted({"calibration_samples", "quantization_preset"} & self.model_fields_set)
        if both:
            raise ValueError(
                f"set {', '.join(both)} in the pipeline's quantize step, not beside an "
                "explicit pipeline"
            )
        if self.precision == "int8":
            raise ValueError(
                "with an explicit pipeline, int8 comes from a '- step: quantize' step; "
                "leave precision at f32"
            )
        if self.quantizes and self.precision != "f32":
            raise ValueError(
                "a pipeline with a quantize step runs int8 with the other layers in f32; "
                f"precision {self.precision} cannot be combined with it"
            )
        return self

    @field_validator("streams", mode="before")
    @classmethod
    def _streams(cls, value: Any) -> Any:
        """One clear message instead of one per member of the union."""
        if value == "auto":
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ValueError("must be a positive integer or 'auto'")
