"""LiteRT toolchain: convert (litert-torch, own environment) → (quantize → evaluate) →
load in the LiteRT interpreter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar, cast

from pydantic import BaseModel

from deploybench.plugins.availability import Availability, distribution_version
from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import Deployable, DeployableFile, Finding, Toolchain
from deploybench.toolchains.litert import checks
from deploybench.toolchains.litert.config import LiteRtConfig
from deploybench.toolchains.litert.conversion import (
    CONVERTER_REQUIREMENTS,
    LITERT_TORCH_VERSION,
    cached_conversion,
    conversion_key,
    converter_environment,
    run_converter,
    store_conversion,
)
from deploybench.toolchains.pipeline import Pipeline

_SESSION_FACTORY = "deploybench.toolchains.litert.session:open_session"
MODEL_FILE = "model.tflite"
QUANTIZED_FILE = "model-int8.tflite"
CONVERSION_FILE = "conversion.json"
QUANTIZATION_FILE = "quantization.json"
REPORT_FILE = "quantization_report.json"
PRECISIONS = {"none": "fp32", "dynamic-int8": "int8 weights, dynamic-range activations"}


class LiteRtToolchain(Toolchain):
    """PyTorch models converted to ``.tflite`` by litert-torch and run by the LiteRT
    interpreter: fp32 or dynamic-range INT8, XNNPACK on or off, threads."""

    name: ClassVar[str] = "litert"
    summary: ClassVar[str] = (
        "LiteRT (TFLite) interpreter on the CPU: PyTorch converted to .tflite by litert-torch "
        "(in its own environment), fp32 or dynamic-range INT8, XNNPACK delegate on or off, "
        "threads."
    )
    config_model: ClassVar[type[BaseModel]] = LiteRtConfig
    input_formats: ClassVar[tuple[str, ...]] = ("torch",)
    capabilities: ClassVar[tuple[str, ...]] = ("fp32", "dynamic-int8", "xnnpack", "threads")

    @classmethod
    def availability(cls) -> Availability:
        """Needs the ai-edge-litert interpreter here; litert-torch gets its own environment
        at the first build."""
        return Availability.of_modules("ai_edge_litert", extra="litert")

    @classmethod
    def tool_version(cls) -> str | None:
        """Installed ai-edge-litert (LiteRT interpreter) version."""
        return distribution_version("ai-edge-litert")

    def reference_config(self) -> BaseModel:
        """fp32 on LiteRT's built-in kernels (no XNNPACK delegate, no quantization)."""
        return LiteRtConfig(quantization="none", xnnpack=False)

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Format and target, tensor shapes and types, quantization, threads, environment."""
        cfg = cast(LiteRtConfig, config).effective()
        findings = checks.format_findings(problem, target)
        if findings:
            return findings
        return [*checks.tensor_findings(problem), *checks.config_findings(problem, target, cfg)]

    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Run the logged pipeline into ``workdir``."""
        from deploybench.problems.torch_model import split_module_spec

        cfg = cast(LiteRtConfig, config).effective()
        assert problem.torch_module is not None
        workdir.mkdir(parents=True, exist_ok=True)
        pipeline = Pipeline()
        module_path, class_name = split_module_spec(problem.torch_module)
        litert_version = distribution_version("ai-edge-litert") or "not installed"
        inputs = [spec.model_dump(mode="json") for spec in problem.inputs]

        batch = cfg.batch
        key = conversion_key(
            problem.model_path, module_path, class_name, problem.torch_kwargs, inputs, batch
        )
        with pipeline.step(
            "convert",
            "litert-torch",
            LITERT_TORCH_VERSION,
            {"state_dict": problem.model_path, "module": module_path},
            {
                "module": f"{module_path.name}:{class_name}",
                "kwargs": problem.torch_kwargs,
                "batch": batch,
                "environment": CONVERTER_REQUIREMENTS,
                "conversion_key": key,
            },
        ) as step:
            model = step.output(workdir / MODEL_FILE)
            report = step.output(workdir / CONVERSION_FILE)
            cached = cached_conversion(key)
            if cached is not None:
                # Same weights, module file, inputs, batch and converter: same .tflite.
                for name in (MODEL_FILE, CONVERSION_FILE):
                    shutil.copyfile(cached / name, workdir / name)
                step.log(f"reused the conversion cached in {cached}")
            else:
                environment = converter_environment(log=step.log)
                step.log(f"converter environment {environment.key[:16]}: {environment.versions}")
                run_converter(
                    environment,
                    [
                        "convert",
                        "--module",
                        str(module_path),
                        "--class-name",
                        class_name,
                        "--weights",
                        str(problem.model_path),
                        "--kwargs",
                        json.dumps(problem.torch_kwargs),
                        "--inputs",
                        json.dumps(inputs),
                        "--batch",
                        str(batch),
                        "--output",
                        str(model),
                    ],
                    report,
                    step.log,
                )
                store_conversion(key, [model, report])
            conversion: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
            step.log(
                f"batch {conversion['batch']}; max |tflite - torch eager| on a random batch: "
                f"{conversion['max_abs_difference']:.3g}"
            )
        converter_versions: dict[str, str] = conversion["versions"]
        tool_versions = {
            name: converter_versions[name] for name in ("litert-torch", "torch", "litert-converter")
        }
        tool_versions["ai-edge-litert"] = litert_version
        files = [
            DeployableFile.of(workdir, model, "model"),
            DeployableFile.of(workdir, report, "conversion-report"),
        ]
        entry = model

        if cfg.quantization == "dynamic-int8":
            entry = self._quantize(pipeline, problem, cfg, model, conversion)
            tool_versions["ai-edge-quantizer"] = converter_versions["ai-edge-quantizer"]
            files += [
                DeployableFile.of(workdir, entry, "quantized-model"),
                DeployableFile.of(workdir, workdir / QUANTIZATION_FILE, "quantization-log"),
                DeployableFile.of(workdir, workdir / REPORT_FILE, "quantization-report"),
            ]

        settings = self._session_config(cfg)
        with pipeline.step(
            "load", "ai-edge-litert", litert_version, {entry.name: entry}, settings
        ) as step:
            from deploybench.toolchains.litert.runtime import LiteRtRunner

            runner = LiteRtRunner(entry, xnnpack=cfg.xnnpack, threads=cfg.threads, batch=batch)
            step.log(
                f"LiteRT {litert_version} interpreter: {runner.n_inputs} input(s) "
                f"{[str(d) for d in runner.input_dtypes]}, outputs "
                f"{[str(d) for d in runner.output_dtypes]}, batch {batch}, "
                f"{runner.delegated_nodes()} node(s) delegated to XNNPACK"
            )
            runner.close()

        deployable = Deployable(
            toolchain=self.name,
            kind="python-session",
            session_factory=_SESSION_FACTORY,
            entry=entry.name,
            files=files,
            session_config=settings,
            inputs=problem.inputs,
            outputs=problem.outputs,
            steps=pipeline.steps,
            tool_versions=tool_versions,
            workflow=cfg.workflow(),
            root=workdir,
        )
        deployable.write_manifest()
        return deployable

    @staticmethod
    def _quantize(
        pipeline: Pipeline,
        problem: ResolvedProblem,
        cfg: LiteRtConfig,
        model: Path,
        conversion: dict[str, Any],
    ) -> Path:
        """Dynamic-range INT8 with ai-edge-quantizer, then compare int8 with fp32."""
        from deploybench.toolchains.litert.evaluation import describe_evaluation, evaluate

        workdir = model.parent
        quantizer_version = str(conversion["versions"]["ai-edge-quantizer"])
        with pipeline.step(
            "quantize",
            "ai-edge-quantizer",
            quantizer_version,
            {model.name: model},
            {"recipe": "dynamic_wi8_afp32", "weights": "int8 per channel"},
        ) as step:
            quantized = step.output(workdir / QUANTIZED_FILE)
            log_file = step.output(workdir / QUANTIZATION_FILE)
            environment = converter_environment(log=step.log)
            run_converter(
                environment,
                ["quantize", "--source", str(model), "--output", str(quantized)],
                log_file,
                step.log,
            )
        litert_version = distribution_version("ai-edge-litert") or "not installed"
        with pipeline.step(
            "evaluate",
            "ai-edge-litert",
            litert_version,
            {model.name: model, quantized.name: quantized, "dataset.npz": problem.dataset_path},
            {"xnnpack": cfg.xnnpack},
        ) as step:
            report_path = step.output(workdir / REPORT_FILE)
            report = evaluate(model, quantized, problem, cfg.batch, cfg.xnnpack)
            report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            step.log(describe_evaluation(report))
        return quantized

    @staticmethod
    def _session_config(cfg: LiteRtConfig) -> dict[str, Any]:
        return {
            "quantization": cfg.quantization,
            "precision": PRECISIONS[cfg.quantization],
            "xnnpack": cfg.xnnpack,
            "threads": cfg.threads,
            "batch": cfg.batch,
        }
