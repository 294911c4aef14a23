"""OpenVINO toolchain: convert → (quantize → evaluate) → package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, cast

from pydantic import BaseModel

from deploybench.plugins.availability import Availability, distribution_version
from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import (
    Deployable,
    DeployableFile,
    Finding,
    Severity,
    Toolchain,
)
from deploybench.toolchains.openvino import checks
from deploybench.toolchains.openvino.config import OpenVinoConfig
from deploybench.toolchains.openvino.properties import (
    DEVICE,
    compile_properties,
    compiled_facts,
    precision_mismatch,
    session_config,
)
from deploybench.toolchains.pipeline import Pipeline

_SESSION_FACTORY = "deploybench.toolchains.openvino.session:open_session"
CONFIG_FILE = "openvino_config.json"
REPORT_FILE = "quantization_report.json"


class OpenVinoToolchain(Toolchain):
    """ONNX models converted to OpenVINO IR and run by its CPU plugin: f32, bf16, f16 or
    NNCF INT8, with performance hint, streams and threads."""

    name: ClassVar[str] = "openvino"
    summary: ClassVar[str] = (
        "OpenVINO CPU plugin: ONNX converted to IR, f32/bf16/f16 inference precision, NNCF "
        "post-training INT8, latency or throughput hint, streams and threads."
    )
    config_model: ClassVar[type[BaseModel]] = OpenVinoConfig
    distribution: ClassVar[str | None] = "openvino"
    input_formats: ClassVar[tuple[str, ...]] = ("onnx",)
    capabilities: ClassVar[tuple[str, ...]] = (
        "f32",
        "bf16",
        "f16",
        "int8-ptq",
        "performance-hint",
        "streams",
        "threads",
    )

    @classmethod
    def availability(cls) -> Availability:
        """Needs the openvino package (NNCF only for int8, checked by :meth:`check`)."""
        return Availability.of_modules("openvino", extra="openvino")

    @classmethod
    def tool_version(cls) -> str | None:
        """Installed openvino version."""
        return distribution_version("openvino")

    def reference_config(self) -> BaseModel:
        """f32 inference precision, latency hint, no quantization."""
        return OpenVinoConfig(precision="f32", hint="latency")

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Format, target, precision, types, threads, then conversion and layer support."""
        cfg = cast(OpenVinoConfig, config)
        if problem.model_format != "onnx":
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="unsupported-format",
                    message=f"the openvino toolchain takes ONNX models, not "
                    f"{problem.model_format}: converting torch models is not supported yet",
                    fix="export the model to ONNX (torch.onnx.export) and use that file",
                )
            ]
        findings: list[Finding] = []
        if "python-session" not in target.executes:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="target-cannot-run-python",
                    message=f"target '{target.name}' cannot run a Python OpenVINO session",
                    fix="pick a host target such as 'local'",
                )
            )
        findings.extend(checks.precision_findings(cfg, target))
        findings.extend(checks.problem_findings(problem, cfg))
        findings.extend(checks.thread_findings(cfg, target))
        findings.extend(checks.model_findings(problem))
        return findings

    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Run the logged pipeline into ``workdir``."""
        cfg = cast(OpenVinoConfig, config)
        workdir.mkdir(parents=True, exist_ok=True)
        pipeline = Pipeline()
        ov_version = distribution_version("openvino") or "not installed"
        tool_versions = {"openvino": ov_version}

        with pipeline.step(
            "convert",
            "openvino",
            ov_version,
            {"input.onnx": problem.model_path},
            {"compress_to_fp16": False},
        ) as step:
            import openvino as ov  # type: ignore[import-untyped]

            xml = step.output(workdir / "model.xml")
            weights = step.output(workdir / "model.bin")
            model = ov.convert_model(str(problem.model_path))
            # save_model compresses weights to fp16 by default, which would change f32 results.
            ov.save_model(model, str(xml), compress_to_fp16=False)
            step.log(f"opset {problem.opset}; ONNX operators: {', '.join(problem.operators)}")
            step.log(f"inputs: {', '.join(str(port) for port in model.inputs)}")
            step.log(f"outputs: {', '.join(str(port) for port in model.outputs)}")
        files = [
            DeployableFile.of(workdir, xml, "model"),
            DeployableFile.of(workdir, weights, "weights"),
        ]
        entry, entry_weights = xml, weights

        if cfg.precision == "int8":
            from deploybench.toolchains.openvino.quantization import (
                describe_evaluation,
                evaluate,
                quantize,
            )

            nncf_version = distribution_version("nncf") or "not installed"
            tool_versions["nncf"] = nncf_version
            with pipeline.step(
                "quantize",
                "nncf",
                nncf_version,
                {xml.name: xml, weights.name: weights},
                {
                    "calibration_samples": cfg.calibration_samples,
                    "preset": cfg.quantization_preset,
                },
            ) as step:
                entry = step.output(workdir / "model-int8.xml")
                entry_weights = step.output(workdir / "model-int8.bin")
                used = quantize(xml, entry, problem, cfg)
                step.log(f"quantization parameters: {used}")
            with pipeline.step(
                "evaluate",
                "openvino",
                ov_version,
                {xml.name: xml, entry.name: entry, "dataset.npz": problem.dataset_path},
            ) as step:
                report_path = step.output(workdir / REPORT_FILE)
                report = evaluate(xml, entry, problem)
                report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
                step.log(describe_evaluation(report))
            files += [
                DeployableFile.of(workdir, entry, "quantized-model"),
                DeployableFile.of(workdir, entry_weights, "quantized-weights"),
                DeployableFile.of(workdir, report_path, "quantization-report"),
            ]

        settings = session_config(cfg)
        properties = compile_properties(settings)
        with pipeline.step(
            "package",
            "openvino",
            ov_version,
            {entry.name: entry, entry_weights.name: entry_weights},
            {"device": DEVICE, "properties": properties},
        ) as step:
            import openvino as ov

            config_path = step.output(workdir / CONFIG_FILE)
            config_path.write_text(json.dumps({DEVICE: properties}, indent=2) + "\n")
            compiled = ov.Core().compile_model(str(entry), DEVICE, properties)
            facts = compiled_facts(compiled)
            step.log(f"compiled on this machine's {DEVICE}: {facts}")
            mismatch = precision_mismatch(cfg.precision, facts)
            if mismatch:
                step.log(f"WARNING {mismatch}; a session on such a CPU refuses to run")
            step.log(
                f"reproduce with: benchmark_app -m {entry.name} -d {DEVICE} "
                f"-load_config {CONFIG_FILE}"
            )
        files.append(DeployableFile.of(workdir, config_path, "runtime-config"))

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
            root=workdir,
        )
        deployable.write_manifest()
        return deployable
