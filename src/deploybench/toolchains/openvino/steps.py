"""OpenVINO's workflow steps: conversion to IR (from ONNX or straight from PyTorch) and NNCF
post-training INT8 quantization with its evaluation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field

from deploybench.plugins.availability import distribution_version
from deploybench.toolchains.workflow.state import (
    ONNX,
    OPENVINO_IR,
    TORCH,
    ModelArtifact,
    WorkflowState,
)
from deploybench.toolchains.workflow.steps import ExportOnnxStep, SimplifyStep, WorkflowStep

if TYPE_CHECKING:
    from deploybench.problems.resolved import ResolvedProblem

REPORT_FILE = "quantization_report.json"


def convert_to_openvino(problem: ResolvedProblem, artifact: ModelArtifact) -> Any:
    """An ``ov.Model`` from an ONNX file, or from the problem's PyTorch module (traced on
    zero inputs of the declared shapes, tensors renamed to the problem's names)."""
    import openvino as ov  # type: ignore[import-untyped]

    if artifact.format == ONNX:
        return ov.convert_model(str(artifact.path))
    from deploybench.problems.torch_model import build_module, example_inputs, load_state_dict

    if problem.torch_module is None:
        raise ValueError("a PyTorch problem needs model.module")
    module = build_module(
        problem.torch_module, problem.torch_kwargs, load_state_dict(artifact.path)
    )
    shapes = [
        ov.PartialShape([d if isinstance(d, int) else -1 for d in spec.shape])
        for spec in problem.inputs
    ]
    model = ov.convert_model(
        module, example_input=example_inputs(problem.inputs, batch=2), input=shapes
    )
    for port, spec in zip(model.inputs, problem.inputs, strict=True):
        port.get_tensor().set_names({spec.name})
    for port, spec in zip(model.outputs, problem.outputs, strict=True):
        port.get_tensor().set_names({spec.name})
    return model


class OvConvertStep(WorkflowStep):
    """ONNX or PyTorch → OpenVINO IR (``model.xml`` + ``model.bin``)."""

    takes: ClassVar[tuple[str, ...]] = (ONNX, TORCH)
    gives: ClassVar[str] = OPENVINO_IR
    needs: ClassVar[tuple[str, ...]] = ("openvino",)

    step: Literal["convert"]
    compress_to_fp16: bool = Field(
        default=False,
        description="Store weights in fp16 (halves model.bin; results change slightly).",
    )

    def run(self, state: WorkflowState) -> None:
        """Convert and save the IR."""
        import openvino as ov

        version = distribution_version("openvino") or "not installed"
        source = state.current
        with state.pipeline.step(
            "convert",
            "openvino",
            version,
            source.files(),
            {"from": source.format, "compress_to_fp16": self.compress_to_fp16},
        ) as record:
            xml = record.output(state.workdir / "model.xml")
            weights = record.output(state.workdir / "model.bin")
            model = convert_to_openvino(state.problem, source)
            # save_model compresses weights to fp16 by default, which would change results.
            ov.save_model(model, str(xml), compress_to_fp16=self.compress_to_fp16)
            if source.format == ONNX:
                record.log(f"ONNX operators: {', '.join(state.problem.operators) or 'unknown'}")
            else:
                record.log(f"converted from PyTorch {state.problem.torch_module}")
            record.log(f"inputs: {', '.join(str(port) for port in model.inputs)}")
            record.log(f"outputs: {', '.join(str(port) for port in model.outputs)}")
        state.current = ModelArtifact(OPENVINO_IR, xml, (weights,))
        state.keep(xml, "model")
        state.keep(weights, "weights")


class NncfQuantizeStep(WorkflowStep):
    """IR → INT8 IR with NNCF post-training quantization calibrated on the problem's dataset,
    then an evaluation of both IRs on the dataset (accuracy drop, label agreement)."""

    takes: ClassVar[tuple[str, ...]] = (OPENVINO_IR,)
    gives: ClassVar[str] = OPENVINO_IR
    needs: ClassVar[tuple[str, ...]] = ("nncf",)

    step: Literal["quantize"]
    calibration_samples: int = Field(
        default=300, ge=1, description="Dataset samples NNCF calibrates on (its subset_size)."
    )
    preset: Literal["performance", "mixed"] = Field(
        default="performance",
        description="performance (symmetric weights and activations) or mixed (asymmetric "
        "activations, better for non-ReLU activations).",
    )

    def run(self, state: WorkflowState) -> None:
        """Quantize, then evaluate the f32 and int8 IRs on the dataset."""
        from deploybench.toolchains.openvino.config import OpenVinoConfig
        from deploybench.toolchains.openvino.quantization import (
            describe_evaluation,
            evaluate,
            quantize,
        )

        ov_version = distribution_version("openvino") or "not installed"
        nncf_version = distribution_version("nncf") or "not installed"
        state.tool_versions["nncf"] = nncf_version
        source = state.current
        options = OpenVinoConfig(
            precision="int8",
            calibration_samples=self.calibration_samples,
            quantization_preset=self.preset,
        )
        with state.pipeline.step(
            "quantize",
            "nncf",
            nncf_version,
            source.files(),
            {"calibration_samples": self.calibration_samples, "preset": self.preset},
        ) as record:
            xml = record.output(state.workdir / "model-int8.xml")
            weights = record.output(state.workdir / "model-int8.bin")
            used = quantize(source.path, xml, state.problem, options)
            record.log(f"quantization parameters: {used}")
        with state.pipeline.step(
            "evaluate",
            "openvino",
            ov_version,
            {
                source.path.name: source.path,
                xml.name: xml,
                "dataset.npz": state.problem.dataset_path,
            },
        ) as record:
            report_path = record.output(state.workdir / REPORT_FILE)
            report = evaluate(source.path, xml, state.problem)
            report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            record.log(describe_evaluation(report))
        state.current = ModelArtifact(OPENVINO_IR, xml, (weights,))
        state.keep(xml, "quantized-model")
        state.keep(weights, "quantized-weights")
        state.keep(report_path, "quantization-report")


OpenVinoStep = Annotated[
    ExportOnnxStep | SimplifyStep | OvConvertStep | NncfQuantizeStep,
    Field(discriminator="step"),
]
