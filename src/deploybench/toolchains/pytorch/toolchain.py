"""PyTorch toolchain: load state dict → (quantize) → (script | export + AOTInductor) → package."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar, cast

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
from deploybench.toolchains.pipeline import Pipeline
from deploybench.toolchains.pytorch.config import PyTorchConfig

_SESSION_FACTORY = "deploybench.toolchains.pytorch.session:open_session"
MODULE_FILE = "module.py"
WEIGHTS_FILE = "weights.pt"
# Modes that rebuild the nn.Module from module.py in the worker (dynamic int8 works there).
_MODULE_MODES = ("eager", "compile")


class PyTorchToolchain(Toolchain):
    """PyTorch state dicts run eagerly, as TorchScript, torch.compile'd or AOTInductor-built."""

    name: ClassVar[str] = "pytorch"
    summary: ClassVar[str] = (
        "PyTorch (CPU): eager, TorchScript, torch.compile (inductor) or torch.export + "
        "AOTInductor (.pt2); dynamic INT8 quantization of Linear layers; threads."
    )
    config_model: ClassVar[type[BaseModel]] = PyTorchConfig
    input_formats: ClassVar[tuple[str, ...]] = ("torch",)
    capabilities: ClassVar[tuple[str, ...]] = (
        "eager",
        "torchscript",
        "torch-compile",
        "export-aoti",
        "dynamic-int8",
        "threads",
    )

    @classmethod
    def availability(cls) -> Availability:
        """Needs the torch package."""
        return Availability.of_modules("torch", extra="torch")

    @classmethod
    def tool_version(cls) -> str | None:
        """Installed torch version."""
        return distribution_version("torch")

    def reference_config(self) -> BaseModel:
        """Eager fp32: the model exactly as its author runs it."""
        return PyTorchConfig(mode="eager", quantization="none")

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Format, target, and whether the quantization fits the mode and the model."""
        cfg = cast(PyTorchConfig, config)
        if problem.model_format != "torch" or problem.torch_module is None:
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="unsupported-format",
                    message=f"pytorch takes PyTorch models (a state dict plus its module "
                    f"class), not {problem.model_format}; converting ONNX to torch is not "
                    "supported",
                    fix="use the onnxruntime, openvino or tvm toolchain for ONNX models, or "
                    "give the torch state dict (format: torch, path, module, inputs)",
                )
            ]
        findings: list[Finding] = []
        if "python-session" not in target.executes:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="target-cannot-run-python",
                    message=f"target '{target.name}' cannot run a Python PyTorch session",
                    fix="pick a host target such as 'local'",
                )
            )
        if cfg.quantization == "dynamic-int8":
            if cfg.mode not in ("eager", "torchscript"):
                findings.append(
                    Finding(
                        severity=Severity.ERROR,
                        code="quantization-mode",
                        message=f"dynamic-int8 quantization is supported with modes eager and "
                        f"torchscript, not {cfg.mode} (its quantized Linear kernels do not "
                        "go through torch.compile / torch.export)",
                        fix="set mode: eager or torchscript, or quantization: none",
                    )
                )
            if "Linear" not in problem.operators:
                findings.append(
                    Finding(
                        severity=Severity.WARNING,
                        code="nothing-to-quantize",
                        message="dynamic quantization only rewrites nn.Linear layers and this "
                        "model has none",
                    )
                )
            elif "Conv2d" in problem.operators or "Conv1d" in problem.operators:
                findings.append(
                    Finding(
                        severity=Severity.INFO,
                        code="conv-stays-fp32",
                        message="dynamic quantization leaves convolutions in fp32",
                    )
                )
        if cfg.mode != "compile" and cfg.compile_mode != "default":
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    code="compile-mode-unused",
                    message=f"compile_mode {cfg.compile_mode} only applies to mode: compile",
                )
            )
        return findings

    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Run the logged pipeline into ``workdir``."""
        import torch

        from deploybench.problems.torch_model import (
            build_module,
            example_inputs,
            load_state_dict,
            split_module_spec,
        )

        cfg = cast(PyTorchConfig, config)
        assert problem.torch_module is not None
        workdir.mkdir(parents=True, exist_ok=True)
        version = torch.__version__
        pipeline = Pipeline()
        files: list[DeployableFile] = []
        module_path, class_name = split_module_spec(problem.torch_module)
        module_spec = f"{MODULE_FILE}:{class_name}"

        with pipeline.step(
            "load-state-dict",
            "torch",
            version,
            {"state_dict": problem.model_path, "module": module_path},
            {"module": f"{module_path.name}:{class_name}", "kwargs": problem.torch_kwargs},
        ) as step:
            weights = step.output(workdir / WEIGHTS_FILE)
            shutil.copyfile(problem.model_path, weights)
            module_copy = step.output(workdir / MODULE_FILE)
            shutil.copyfile(module_path, module_copy)
            state = load_state_dict(weights)
            model = build_module(problem.torch_module, problem.torch_kwargs, state)
            n_params = sum(int(p.numel()) for p in model.parameters())
            step.log(f"{len(state)} tensors loaded (weights_only=True); {n_params} parameters")
        files.append(DeployableFile.of(workdir, weights, "model"))
        files.append(DeployableFile.of(workdir, module_copy, "module"))
        entry = weights

        if cfg.quantization == "dynamic-int8":
            with pipeline.step(
                "quantize",
                "torch.ao.quantization",
                version,
                {weights.name: weights},
                {"quantization": "dynamic-int8", "layers": ["Linear"], "dtype": "qint8"},
            ) as step:
                model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                    model, {torch.nn.Linear}, dtype=torch.qint8
                )
                entry = step.output(workdir / "quantized.pt")
                torch.save(model.state_dict(), entry)
                quantized = [
                    n for n, m in model.named_modules() if "quantized" in type(m).__module__
                ]
                step.log(f"quantized layers: {', '.join(quantized) or 'none'}")
            files.append(DeployableFile.of(workdir, entry, "quantized-model"))

        example = example_inputs(problem.inputs)
        if cfg.mode == "torchscript":
            with pipeline.step("script", "torch.jit", version, {entry.name: entry}) as step:
                scripted_path = step.output(workdir / "model.ts.pt")
                try:
                    scripted = torch.jit.script(model)
                    how = "torch.jit.script"
                except Exception as exc:  # scripting rejects much valid Python: trace instead
                    step.log(f"torch.jit.script failed ({type(exc).__name__}); tracing instead")
                    with torch.inference_mode():
                        scripted = torch.jit.trace(model, example)  # type: ignore[no-untyped-call]
                    how = "torch.jit.trace"
                torch.jit.save(scripted, str(scripted_path))
                step.log(f"TorchScript by {how}")
            entry = scripted_path
            files.append(DeployableFile.of(workdir, entry, "torchscript-model"))
        elif cfg.mode == "export-aoti":
            batch = torch.export.Dim.DYNAMIC
            dynamic = tuple({0: batch} for _ in problem.inputs)
            with pipeline.step("export", "torch.export", version, {entry.name: entry}) as step:
                exported = torch.export.export(model, example, dynamic_shapes=dynamic)
                program = step.output(workdir / "exported.pt2")
                torch.export.save(exported, str(program))
                step.log(f"{len(exported.graph.nodes)} graph nodes; batch dimension dynamic")
            files.append(DeployableFile.of(workdir, program, "exported-program"))
            with pipeline.step(
                "aoti-package", "torch._inductor", version, {program.name: program}
            ) as step:
                package = step.output(workdir / "model.pt2")
                torch._inductor.aoti_compile_and_package(exported, package_path=str(package))
                step.log("AOTInductor shared library packaged as model.pt2")
            entry = package
            files.append(DeployableFile.of(workdir, entry, "aoti-package"))

        deployable = Deployable(
            toolchain=self.name,
            kind="python-session",
            session_factory=_SESSION_FACTORY,
            entry=entry.name,
            files=files,
            session_config=self._session_config(cfg, module_spec, problem.torch_kwargs),
            inputs=problem.inputs,
            outputs=problem.outputs,
            steps=pipeline.steps,
            tool_versions={"torch": version},
            root=workdir,
        )
        deployable.write_manifest()
        return deployable

    @staticmethod
    def _session_config(cfg: PyTorchConfig, module: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            "mode": cfg.mode,
            "quantization": cfg.quantization,
            "compile_mode": cfg.compile_mode,
            "module": module,
            "kwargs": kwargs,
            "weights": WEIGHTS_FILE,
        }
