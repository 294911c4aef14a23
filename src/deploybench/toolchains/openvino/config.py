"""Configuration of the OpenVINO toolchain."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    @field_validator("streams", mode="before")
    @classmethod
    def _streams(cls, value: Any) -> Any:
        """One clear message instead of one per member of the union."""
        if value == "auto":
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ValueError("must be a positive integer or 'auto'")
