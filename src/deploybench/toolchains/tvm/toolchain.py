"""Apache TVM (Relax) toolchain: import (ONNX → Relax) → compile (LLVM) → package (.so)."""

from __future__ import annotations

import difflib
import importlib
import json
import re
import warnings
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
from deploybench.toolchains.pipeline import BuildError
from deploybench.toolchains.tvm.config import TvmConfig
from deploybench.toolchains.tvm.frontend import (
    SUPPORTED_DTYPES,
    bind_batch,
    error_summary,
    import_onnx,
    unsupported_operators,
)
from deploybench.toolchains.tvm.runtime import (
    DISTRIBUTION,
    find_linker,
    host_cpu,
    linker_version,
    llvm_target,
    tvm_module,
    tvm_version,
    usable_cpus,
)
from deploybench.toolchains.workflow import (
    ExportOnnxStep,
    WorkflowState,
    WorkflowStep,
    chain_findings,
    require_chain,
    run_workflow,
)
from deploybench.toolchains.workflow.state import ONNX, TORCH

_SESSION_FACTORY = "deploybench.toolchains.tvm.session:open_session"
_FUNCTION = "main"
_LIBRARY = "model.so"
_SCRIPT = "model.relax.py"
_RUNTIME = "runtime.json"
_ELF_MAGIC = b"\x7fELF"
# The trial import of check() loads the whole model in-process; past this size the build's
# own import step is where a failure shows up.
_TRIAL_IMPORT_MAX_BYTES = 256 * 1024 * 1024
METASCHEDULE_REFUSAL = (
    "MetaSchedule auto-tuning crashes the process with apache-tvm 0.27 on this platform "
    "(a segmentation fault in tvm::ffi::ToJSONGraph while the tuning database is written), "
    "so it is not offered"
)


class TvmToolchain(Toolchain):
    """ONNX models compiled by Apache TVM (Relax) into a shared library run by the Relax VM."""

    name: ClassVar[str] = "tvm"
    summary: ClassVar[str] = (
        "Apache TVM (Relax): ONNX imported to Relax, compiled by LLVM for the host CPU at "
        "opt levels 0-3 into a shared library run by the Relax virtual machine (no auto-tuning)."
    )
    config_model: ClassVar[type[BaseModel]] = TvmConfig
    distribution: ClassVar[str | None] = "apache-tvm"
    input_formats: ClassVar[tuple[str, ...]] = ("onnx", "torch")
    capabilities: ClassVar[tuple[str, ...]] = (
        "opt-levels",
        "llvm-target",
        "symbolic-batch",
        "static-batch",
        "threads",
    )

    @classmethod
    def availability(cls) -> Availability:
        """Needs the onnx and apache-tvm packages and a C/C++ compiler to link the library."""
        modules = Availability.of_modules("onnx", "tvm", extra="tvm")
        if not modules.available:
            return modules
        if find_linker() is None:
            return Availability(
                available=False,
                reason="no C/C++ compiler (g++, gcc, clang) on PATH: TVM links the compiled "
                "model into a shared library with it; install one (apt-get install g++)",
            )
        return modules

    @classmethod
    def tool_version(cls) -> str | None:
        """Installed apache-tvm version."""
        return distribution_version(DISTRIBUTION)

    def reference_config(self) -> BaseModel:
        """fp32, opt level 0 (no TVM or LLVM optimization), untuned, for the host CPU."""
        return TvmConfig(opt_level=0, tuning="none")

    def workflow(self, config: BaseModel, model_format: str) -> list[WorkflowStep]:
        """Steps before the import: the explicit pipeline, else export-onnx for torch."""
        cfg = cast(TvmConfig, config)
        if cfg.pipeline is not None:
            return list(cfg.pipeline)
        return [ExportOnnxStep(step="export-onnx")] if model_format == TORCH else []

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Format, target, tuning, LLVM target, operators, dtypes, shapes and a trial import."""
        cfg = cast(TvmConfig, config)
        if problem.model_format not in self.input_formats:
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="unsupported-format",
                    message=f"tvm takes ONNX or PyTorch models, not {problem.model_format}",
                    fix="export the model to ONNX first",
                )
            ]
        steps = self.workflow(cfg, problem.model_format)
        findings = chain_findings(steps, problem.model_format, (ONNX,), self.name)
        if "python-session" not in target.executes:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="target-cannot-run-python",
                    message=f"target '{target.name}' cannot run a Python TVM session",
                    fix="pick a host target such as 'local'",
                )
            )
        if cfg.tuning == "metaschedule":
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="tuning-unavailable",
                    subject="metaschedule",
                    message=METASCHEDULE_REFUSAL,
                    fix="set tuning: none",
                )
            )
        findings.extend(self._llvm_findings(cfg))
        findings.extend(self._dtype_findings(problem))
        findings.extend(self._shape_findings(problem, cfg))
        # A torch problem lists module classes, not ONNX operators: its graph is checked
        # when the export step has written it.
        onnx_ops = problem.operators if problem.model_format == ONNX else []
        unsupported = unsupported_operators(onnx_ops)
        if unsupported:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="unsupported-op",
                    subject=", ".join(unsupported),
                    message=f"the Relax ONNX frontend of tvm {tvm_version()} cannot import "
                    f"operator(s) {', '.join(unsupported)}",
                    fix="replace them with supported operators, or use another toolchain "
                    "(onnxruntime)",
                )
            )
        if not steps and not any(f.severity is Severity.ERROR for f in findings):
            # With steps before it, the graph TVM imports only exists once they have run.
            findings.extend(self._trial_import(problem))
        if ("Conv" in onnx_ops or "Conv2d" in problem.operators) and cfg.tuning == "none":
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    code="untuned-convolutions",
                    message="without auto-tuning TVM runs convolutions with its default "
                    "schedules, which can be several times slower than ONNX Runtime's kernels "
                    "(about 10x on larger CNNs here); latency figures measure untuned TVM",
                )
            )
        return findings

    def _llvm_findings(self, cfg: TvmConfig) -> list[Finding]:
        if cfg.target.mcpu is None:
            return []
        codegen = tvm_module("tvm.target.codegen")
        target = tvm_module("tvm.target").Target({"kind": "llvm"})
        triple = str(target.attrs.get("mtriple", ""))
        if codegen.llvm_is_valid_cpu(cfg.target.mcpu, triple):
            host = host_cpu()
            if cfg.target.mcpu == host:
                return []
            return [
                Finding(
                    severity=Severity.WARNING,
                    code="foreign-cpu",
                    subject=cfg.target.mcpu,
                    message=f"code is generated for {cfg.target.mcpu} but this host is {host}: "
                    "the library may use instructions this CPU lacks (illegal instruction) "
                    "or miss ones it has",
                    fix="leave target.mcpu unset to compile for the host",
                )
            ]
        known = sorted(str(name) for name in codegen.llvm_get_cpu_archlist(target))
        close = difflib.get_close_matches(cfg.target.mcpu, known, n=5)
        hint = f"closest: {', '.join(close)}; " if close else ""
        return [
            Finding(
                severity=Severity.ERROR,
                code="unknown-cpu",
                subject=cfg.target.mcpu,
                message=f"LLVM does not know the CPU '{cfg.target.mcpu}' for {triple}",
                fix=f"{hint}allowed: {', '.join(known)}; or leave target.mcpu unset "
                f"for the host ({host_cpu()})",
            )
        ]

    @staticmethod
    def _dtype_findings(problem: ResolvedProblem) -> list[Finding]:
        return [
            Finding(
                severity=Severity.ERROR,
                code="unsupported-dtype",
                subject=spec.name,
                message=f"tensor {spec.render()} has a type TVM cannot exchange with numpy",
                fix=f"use one of: {', '.join(SUPPORTED_DTYPES)}",
            )
            for spec in [*problem.inputs, *problem.outputs]
            if spec.dtype not in SUPPORTED_DTYPES
        ]

    @staticmethod
    def _shape_findings(problem: ResolvedProblem, cfg: TvmConfig) -> list[Finding]:
        """Symbolic dimensions stay symbolic; a static batch must fit a fixed first dim."""
        findings: list[Finding] = []
        dynamic = [
            s.render() for s in problem.inputs if any(not isinstance(d, int) for d in s.shape)
        ]
        if dynamic and cfg.batch_size is None:
            findings.append(
                Finding(
                    severity=Severity.INFO,
                    code="symbolic-shapes",
                    message=f"dynamic dimensions stay symbolic ({'; '.join(dynamic)}): one "
                    "library serves every size, with shape checks at run time",
                    fix="set batch_size to compile for one batch size",
                )
            )
        for spec in problem.inputs if cfg.batch_size is not None else []:
            first = spec.shape[0] if spec.shape else None
            if isinstance(first, int) and first != cfg.batch_size:
                findings.append(
                    Finding(
                        severity=Severity.ERROR,
                        code="batch-size-conflict",
                        subject=spec.name,
                        message=f"batch_size {cfg.batch_size} cannot bind input "
                        f"{spec.render()}: its first dimension is fixed at {first}",
                        fix=f"set batch_size: {first}, or remove it",
                    )
                )
        return findings

    @staticmethod
    def _trial_import(problem: ResolvedProblem) -> list[Finding]:
        """Import the model once: the frontend names shape and attribute cases it cannot take."""
        if problem.model_size_bytes > _TRIAL_IMPORT_MAX_BYTES:
            return [
                Finding(
                    severity=Severity.INFO,
                    code="import-not-tried",
                    message=f"the model ({problem.model_size_bytes} bytes) is too large to "
                    "import during checks; a frontend failure would show in the import step",
                )
            ]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import_onnx(problem.model_path)
        except Exception as exc:  # the frontend raises many unrelated exception classes
            summary = error_summary(exc)
            subject = _node_operator(problem.model_path, summary)
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="frontend-cannot-import",
                    subject=subject,
                    message=f"the Relax ONNX frontend of tvm {tvm_version()} cannot import the "
                    f"model: {summary}" + (f" (node operator: {subject})" if subject else ""),
                    fix="simplify the graph (e.g. onnxsim), fix input shapes, or use another "
                    "toolchain",
                )
            ]
        return []

    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Run the logged pipeline into ``workdir``."""
        cfg = cast(TvmConfig, config)
        if cfg.tuning != "none":
            raise BuildError("compile", METASCHEDULE_REFUSAL, "")
        steps = self.workflow(cfg, problem.model_format)
        require_chain(steps, problem.model_format, (ONNX,), self.name)
        state = WorkflowState.start(problem, workdir)
        source = run_workflow(steps, state).path
        pipeline = state.pipeline
        version = tvm_version()
        onnx_version = distribution_version("onnx") or "not installed"
        tvm = tvm_module("tvm")
        llvm_version = str(tvm_module("tvm.target.codegen").llvm_version_major())
        linker = find_linker() or "none"
        linker_text = linker_version(linker) if linker != "none" else "no linker found"

        with pipeline.step(
            "import",
            "tvm.relax.frontend.onnx",
            version,
            {"input.onnx" if not steps else source.name: source},
            {"batch_size": cfg.batch_size, "onnx": onnx_version},
        ) as step:
            module = import_onnx(source)
            if cfg.batch_size is not None:
                module, bound = bind_batch(module, cfg.batch_size)
                step.log(
                    f"bound {', '.join(bound)} to {cfg.batch_size}"
                    if bound
                    else "no symbolic first dimension to bind"
                )
            script = step.output(workdir / _SCRIPT)
            script.write_text(module.script(show_meta=False), encoding="utf-8")
            if not steps:
                step.log(f"opset {problem.opset}; operators: {', '.join(problem.operators)}")
            step.log(f"main: {_signature(module['main'])}")

        resolved = llvm_target(
            mcpu=cfg.target.mcpu or host_cpu(),
            mattr=list(cfg.target.mattr),
            num_cores=cfg.target.num_cores or usable_cpus(),
            opt_level=cfg.opt_level,
        )
        with pipeline.step(
            "compile",
            "tvm.compile (LLVM)",
            version,
            {script.name: script},
            {"opt_level": cfg.opt_level, "tuning": cfg.tuning, "target": resolved},
        ) as step:
            target = tvm.target.Target(resolved)
            with tvm.transform.PassContext(opt_level=cfg.opt_level):
                executable = tvm.compile(module, target=target)
            library = step.output(workdir / _LIBRARY)
            executable.export_library(str(library))
            step.log(f"target: {target}")
            step.log(f"LLVM {llvm_version}; linked with {linker_text}")
            step.log(f"host CPU {host_cpu()}; default schedules (no tuning)")

        with pipeline.step("package", "tvm.runtime", version, {library.name: library}) as step:
            if library.read_bytes()[:4] != _ELF_MAGIC:
                raise ValueError(f"{library.name} is not an ELF shared library")
            loaded = tvm.runtime.load_module(str(library))
            vm = tvm_module("tvm.relax").VirtualMachine(loaded, tvm.cpu())
            _ = vm[_FUNCTION]  # raises when the entry function is missing
            runtime = step.output(workdir / _RUNTIME)
            runtime.write_text(
                json.dumps(
                    {
                        "library": library.name,
                        "executor": "relax.VirtualMachine",
                        "function": _FUNCTION,
                        "device": "cpu",
                        "apache-tvm": version,
                        "target": resolved,
                        "inputs": [spec.model_dump() for spec in problem.inputs],
                        "outputs": [spec.model_dump() for spec in problem.outputs],
                    },
                    indent=2,
                )
                + "\n",
                encoding="utf-8",
            )
            step.log(f"{library.name}: ELF shared library, {library.stat().st_size} bytes")
            step.log(f"loads in tvm.runtime; relax.VirtualMachine exposes '{_FUNCTION}'")

        deployable = Deployable(
            toolchain=self.name,
            kind="python-session",
            session_factory=_SESSION_FACTORY,
            entry=library.name,
            files=[
                *state.files,
                DeployableFile.of(workdir, script, "relax-ir"),
                DeployableFile.of(workdir, library, "shared-library"),
                DeployableFile.of(workdir, runtime, "runtime-config"),
            ],
            session_config={
                "function": _FUNCTION,
                "batch_size": cfg.batch_size,
                "target": resolved,
            },
            inputs=problem.inputs,
            outputs=problem.outputs,
            steps=pipeline.steps,
            tool_versions={
                **state.tool_versions,
                "apache-tvm": version,
                "onnx": onnx_version,
                "llvm": llvm_version,
                "linker": linker_text,
            },
            workflow=[
                *(step.model_dump() for step in steps),
                {"step": "compile", "opt_level": cfg.opt_level, "target": resolved},
            ],
            root=workdir,
        )
        deployable.write_manifest()
        return deployable


def _node_operator(model: Path, message: str) -> str | None:
    """The operator of the node a frontend message names ("Node NAME ..."), if any."""
    match = re.search(r"\bNode (\S+)", message)
    if match is None:
        return None
    onnx = importlib.import_module("onnx")
    graph = onnx.load(str(model), load_external_data=False).graph
    return next((str(n.op_type) for n in graph.node if n.name == match.group(1)), None)


def _type_text(node: Any, *names: str) -> str:
    for name in names:
        value = getattr(node, name, None)
        if value is not None:
            return str(value)
    return "?"


def _signature(function: Any) -> str:
    """``(name: type, ...) -> type`` of a Relax function, for the import log."""
    params = ", ".join(
        f"{_type_text(p, 'name_hint', 'name')}: {_type_text(p, 'ty', 'struct_info')}"
        for p in function.params
    )
    return f"({params}) -> {_type_text(function, 'ret_ty', 'ret_struct_info')}"
