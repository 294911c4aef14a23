"""Configuration of the C code generation toolchain (cgen)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from deploybench.toolchains.onnxruntime.steps import OrtQuantizeStep, QuantizeOptions
from deploybench.toolchains.workflow import ExportOnnxStep, SimplifyStep

Precision = Literal["fp32", "int8"]
OptLevel = Literal["-O2", "-Os", "-O3"]
FloatAbi = Literal["soft", "softfp", "hard"]
# Cores the cross-compiler may be told to generate code for (-mcpu); "cortex-m4f" is the M4
# with its single-precision FPU (-mcpu=cortex-m4 -mfpu=fpv4-sp-d16).
Cpu = Literal["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m4f", "cortex-m7", "cortex-m33"]
# Options that describe model transformations: an explicit pipeline replaces them.
PIPELINE_OPTIONS = (
    "precision",
    "per_channel",
    "reduce_range",
    "activation_type",
    "calibration_samples",
    "calibration_method",
)

CgenStep = Annotated[
    ExportOnnxStep | SimplifyStep | OrtQuantizeStep,
    Field(discriminator="step"),
]


class CgenConfig(QuantizeOptions):
    """Every option of the ONNX → C pipeline and of the compilation of the generated code.

    The compilation options apply on every target: the host build (gcc), aarch64
    (aarch64-linux-gnu-gcc) and Cortex-M boards (arm-none-eabi-gcc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    precision: Precision = Field(
        default="fp32",
        description="fp32, or int8: the model is first quantized to static QDQ INT8 by "
        "onnxruntime.quantization (calibrated on the problem's dataset) and the C code then "
        "uses integer arithmetic with requantization. A model that is already QDQ-quantized "
        "is generated as INT8 as it is: leave precision at fp32 so it is not quantized again.",
    )
    opt_level: OptLevel = Field(default="-O2", description="Compiler optimization flag.")
    cpu: Cpu | None = Field(
        default=None,
        description="Core to compile for (-mcpu); default: the board's own core. Code for a "
        "smaller core runs on a bigger one (cortex-m0 code on an M3 board), not the reverse.",
    )
    float_abi: FloatAbi | None = Field(
        default=None,
        description="Float ABI (-mfloat-abi); default: hard on cores with an FPU, soft "
        "otherwise. Ignored by host and aarch64 builds.",
    )
    prefix: str = Field(
        default="dbm",
        pattern=r"^[a-z][a-z0-9_]{0,15}$",
        description="Prefix of the generated C symbols (dbm_run, DBM_INPUT_SIZE, ...).",
    )
    pipeline: list[CgenStep] | None = Field(
        default=None,
        description="Explicit deployment workflow before code generation, in order: "
        "export-onnx (torch models), simplify, quantize (static-int8 only). Replaces "
        "precision and the quantization options.",
    )

    @model_validator(mode="after")
    def _pipeline_or_options(self) -> Self:
        both = sorted(set(PIPELINE_OPTIONS).intersection(self.model_fields_set))
        if self.pipeline is not None and both:
            raise ValueError(
                f"set {', '.join(both)} inside the pipeline's steps (quantize), "
                "not beside an explicit pipeline"
            )
        for index, step in enumerate(self.pipeline or []):
            if isinstance(step, OrtQuantizeStep) and step.mode != "static-int8":
                raise ValueError(
                    f"pipeline[{index}] (quantize): cgen generates integer code from static "
                    f"QDQ models only; mode '{step.mode}' is not supported, use static-int8"
                )
        return self
