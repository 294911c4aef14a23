"""ONNX Runtime's own workflow steps: INT8 quantization and offline graph optimization."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from deploybench.plugins.availability import distribution_version
from deploybench.toolchains.workflow.state import ONNX, ModelArtifact, WorkflowState
from deploybench.toolchains.workflow.steps import ExportOnnxStep, SimplifyStep, WorkflowStep

# Session options of the toolchain config the optimize step needs (set by the toolchain).
PROVIDERS_FACT = "execution_providers"
_LEVELS = {
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


class QuantizeOptions(BaseModel):
    """How onnxruntime.quantization quantizes: shared by the ``quantize`` step and the
    toolchain config's flat options (from which the default pipeline builds that step)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_channel: bool = Field(default=False, description="Per-channel weight quantization.")
    reduce_range: bool = Field(
        default=False, description="7-bit weights (helps older CPUs without VNNI)."
    )
    activation_type: Literal["int8", "uint8"] = Field(
        default="int8", description="Activation type of static quantization."
    )
    calibration_samples: int = Field(
        default=64, ge=1, description="Dataset samples used to calibrate static quantization."
    )
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        default="minmax", description="How static quantization picks activation ranges."
    )


class OrtQuantizeStep(QuantizeOptions, WorkflowStep):
    """ONNX → INT8 ONNX with onnxruntime.quantization: dynamic, or static QDQ calibrated on
    the problem's dataset. Runs ORT's quantization pre-processing first."""

    takes: ClassVar[tuple[str, ...]] = (ONNX,)
    gives: ClassVar[str] = ONNX
    needs: ClassVar[tuple[str, ...]] = ("onnxruntime",)

    step: Literal["quantize"]
    mode: Literal["dynamic-int8", "static-int8"] = Field(
        description="dynamic-int8 (weights int8, activations at run time) or static-int8 "
        "(QDQ, calibrated on the problem's dataset)."
    )
    preprocess: bool = Field(
        default=True,
        description="Run quant_pre_process (shape inference, fusion) before quantizing.",
    )

    def run(self, state: WorkflowState) -> None:
        """Pre-process, then quantize; both are logged steps."""
        from deploybench.toolchains.onnxruntime.quantization import quantize

        version = distribution_version("onnxruntime") or "not installed"
        current = state.current.path
        if self.preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            with state.pipeline.step(
                "preprocess", "onnxruntime.quantization", version, state.current.files()
            ) as record:
                prepared = record.output(state.workdir / "preprocessed.onnx")
                quant_pre_process(str(current), str(prepared))
            state.keep(prepared, "preprocessed-model")
            current = prepared
        parameters = self.model_dump(exclude={"step", "preprocess"})
        with state.pipeline.step(
            "quantize",
            "onnxruntime.quantization",
            version,
            {current.name: current},
            parameters,
        ) as record:
            quantized = record.output(state.workdir / "quantized.onnx")
            used = quantize(current, quantized, state.problem, self)
            record.log(f"quantization parameters: {used}")
        state.current = ModelArtifact(ONNX, quantized)
        state.keep(quantized, "quantized-model")


class OrtOptimizeStep(WorkflowStep):
    """ONNX → ONNX optimized offline by ONNX Runtime at a graph optimization level; the saved
    graph is what runs (nothing is re-optimized at load time)."""

    takes: ClassVar[tuple[str, ...]] = (ONNX,)
    gives: ClassVar[str] = ONNX
    needs: ClassVar[tuple[str, ...]] = ("onnxruntime",)

    step: Literal["optimize"]
    level: Literal["basic", "extended", "all"] = Field(
        default="all", description="ONNX Runtime graph optimization level."
    )

    def run(self, state: WorkflowState) -> None:
        """Create a session that saves its optimized graph."""
        import onnxruntime as ort

        from deploybench.toolchains.onnxruntime.providers import create_session

        version = distribution_version("onnxruntime") or "not installed"
        providers = list(state.facts.get(PROVIDERS_FACT, ["CPUExecutionProvider"]))
        with state.pipeline.step(
            "optimize", "onnxruntime", version, state.current.files(), {"level": self.level}
        ) as record:
            optimized = record.output(state.workdir / "optimized.onnx")
            options = ort.SessionOptions()
            options.graph_optimization_level = getattr(
                ort.GraphOptimizationLevel, _LEVELS[self.level]
            )
            options.optimized_model_filepath = str(optimized)
            options.log_severity_level = 3  # the one warning ORT prints is restated below
            create_session(str(state.current.path), options, providers)
            record.log(f"saved {self.level}-level optimized graph")
            if self.level == "all":
                record.log(
                    "level 'all' may insert layout (NCHWc) kernels specific to this CPU: "
                    "the optimized model is only valid on the machine that built it"
                )
        state.current = ModelArtifact(ONNX, optimized)
        state.keep(optimized, "optimized-model")


OrtStep = Annotated[
    ExportOnnxStep | SimplifyStep | OrtQuantizeStep | OrtOptimizeStep,
    Field(discriminator="step"),
]
