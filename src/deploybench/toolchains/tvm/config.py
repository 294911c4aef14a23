"""Configuration of the Apache TVM (Relax) toolchain."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deploybench.toolchains.workflow import ExportOnnxStep, SimplifyStep

OptLevel = Literal[0, 1, 2, 3]
Tuning = Literal["none", "metaschedule"]

# Steps that may run before TVM imports and compiles the ONNX graph.
TvmStep = Annotated[ExportOnnxStep | SimplifyStep, Field(discriminator="step")]

_FEATURE = re.compile(r"^[+-][A-Za-z0-9][A-Za-z0-9._-]*$")


class TvmTargetConfig(BaseModel):
    """Attributes of the LLVM code-generation target (TVM's ``Target`` of kind ``llvm``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mcpu: str | None = Field(
        default=None,
        description="LLVM CPU name the code is generated for, e.g. znver4 or skylake-avx512. "
        "Default: the host CPU as LLVM detects it when the model is built.",
    )
    mattr: list[str] = Field(
        default_factory=list,
        description="LLVM CPU features to add or remove on top of mcpu's, e.g. ['+avx512f'] "
        "or ['-avx512f'].",
    )
    num_cores: int | None = Field(
        default=None,
        ge=1,
        description="Cores the code is planned for (LLVM target num-cores). Default: the CPUs "
        "the building process may run on (its affinity).",
    )

    @field_validator("mattr")
    @classmethod
    def _check_features(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not _FEATURE.match(item)]
        if bad:
            raise ValueError(
                f"each feature starts with '+' (enable) or '-' (disable), e.g. '+avx2' or "
                f"'-avx512f'; got {', '.join(repr(item) for item in bad)}"
            )
        return value


class TvmConfig(BaseModel):
    """Every option of the TVM deployment pipeline (ONNX → Relax → shared library)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    opt_level: OptLevel = Field(
        default=3,
        description="Optimization level 0-3: TVM's PassContext level and LLVM's -O level of the "
        "generated code. 0 is the unoptimized reference.",
    )
    tuning: Tuning = Field(
        default="none",
        description="Auto-tuning of the generated kernels: none (TVM's default schedules) or "
        "metaschedule (refused here: it crashes with apache-tvm 0.27 on this platform).",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Bind a symbolic (dynamic) first input dimension to this size. Default: "
        "keep it symbolic, so one library serves every batch size.",
    )
    target: TvmTargetConfig = Field(
        default_factory=TvmTargetConfig,
        description="LLVM code-generation target: mcpu, mattr, num_cores.",
    )
    pipeline: list[TvmStep] | None = Field(
        default=None,
        description="Steps before TVM imports the ONNX graph and compiles it: export-onnx "
        "(torch models) and simplify. Default: export-onnx for torch models, nothing for ONNX.",
    )
