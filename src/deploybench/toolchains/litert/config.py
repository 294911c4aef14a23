"""Configuration of the LiteRT (TFLite) toolchain."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Quantization = Literal["none", "dynamic-int8"]


class LiteRtConvertStep(BaseModel):
    """torch → .tflite with litert-torch, in its own environment, at a fixed batch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: Literal["convert"]
    batch: int = Field(default=1, ge=1, description="Batch size the model is converted at.")


class LiteRtQuantizeStep(BaseModel):
    """.tflite → INT8 .tflite with ai-edge-quantizer, then an evaluation against fp32."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: Literal["quantize"]
    mode: Literal["dynamic-int8"] = Field(
        default="dynamic-int8",
        description="dynamic-int8: int8 per-channel weights, activations quantized at run time.",
    )


LiteRtStep = Annotated[LiteRtConvertStep | LiteRtQuantizeStep, Field(discriminator="step")]


class LiteRtConfig(BaseModel):
    """Every option of the LiteRT conversion pipeline and of the interpreter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quantization: Quantization = Field(
        default="none",
        description="none (fp32 .tflite), or dynamic-int8: dynamic-range quantization by "
        "ai-edge-quantizer (int8 per-channel weights, activations quantized at run time, "
        "float32 inputs and outputs).",
    )
    xnnpack: bool = Field(
        default=True,
        description="Let the interpreter apply its default XNNPACK delegate (true), or run "
        "the built-in LiteRT kernels only (false).",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="Interpreter num_threads; default: environment.threads, else LiteRT's own.",
    )
    batch: int = Field(
        default=1,
        ge=1,
        description="Batch size the model is converted at (litert-torch cannot convert a "
        "dynamic batch dimension). A batch of n samples runs as n/batch invocations; n must "
        "be a multiple of it.",
    )
    pipeline: list[LiteRtStep] | None = Field(
        default=None,
        description="Explicit deployment workflow: convert (torch → .tflite, with its batch), "
        "then optionally quantize (dynamic-int8). Replaces quantization and batch; without "
        "it: convert, then quantize when quantization is dynamic-int8.",
    )

    @model_validator(mode="after")
    def _pipeline_shape(self) -> Self:
        if self.pipeline is None:
            return self
        both = sorted({"quantization", "batch"} & self.model_fields_set)
        if both:
            raise ValueError(
                f"set {', '.join(both)} in the pipeline's steps (convert.batch, quantize), "
                "not beside an explicit pipeline"
            )
        kinds = [step.step for step in self.pipeline]
        if kinds not in (["convert"], ["convert", "quantize"]):
            raise ValueError(
                f"a LiteRT pipeline is [convert] or [convert, quantize] (torch → .tflite → "
                f"int8), not {kinds}"
            )
        return self

    def effective(self) -> LiteRtConfig:
        """The flat options an explicit pipeline stands for (what the build and the session
        use)."""
        if self.pipeline is None:
            return self
        convert = self.pipeline[0]
        assert isinstance(convert, LiteRtConvertStep)
        quantization = "dynamic-int8" if len(self.pipeline) > 1 else "none"
        return self.model_copy(update={"batch": convert.batch, "quantization": quantization})

    def workflow(self) -> list[dict[str, Any]]:
        """The steps that run, explicit or default, as recorded in the deployable."""
        effective = self.effective()
        steps: list[dict[str, Any]] = [{"step": "convert", "batch": effective.batch}]
        if effective.quantization == "dynamic-int8":
            steps.append({"step": "quantize", "mode": "dynamic-int8"})
        return steps
