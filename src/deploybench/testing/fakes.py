"""A test-double toolchain: ONNX models on ``onnx.reference`` with injectable faults.

It runs through the real worker and launcher, so tests can make a repetition crash, hang,
raise or exhaust memory and watch deploybench report it. It is registered in-process with
:func:`deploybench.plugins.registered`, never through entry points.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deploybench.hashing import sha256_file
from deploybench.plugins.availability import Availability, distribution_version
from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import (
    Deployable,
    DeployableFile,
    Finding,
    SessionOptions,
    Severity,
    Toolchain,
)
from deploybench.toolchains.pipeline import Pipeline

Fault = Literal["none", "crash", "hang", "raise", "memory", "noise"]


class FakeConfig(BaseModel):
    """Which fault to inject, where, and after how many runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fault: Fault = "none"
    fault_at: Literal["load", "run"] = "run"
    after_runs: int = Field(default=0, ge=0)
    fail_build: bool = False
    noise: float = Field(default=0.0, ge=0, description="Relative output noise ('noise' fault).")
    report_latency: bool = Field(
        default=False,
        description="Open a session that reports its own latency per run "
        "(Session.last_runtime_latency_ns), as OpenVINO's does.",
    )


class FakeSession:
    """Evaluates the ONNX graph with ``onnx.reference`` and injects the configured fault."""

    needs_synchronize = False

    def __init__(self, deployable: Deployable, options: SessionOptions) -> None:
        from onnx.reference import ReferenceEvaluator

        self._config = FakeConfig.model_validate(deployable.session_config)
        if self._config.fault_at == "load":
            self._inject()
        self._evaluator = ReferenceEvaluator(str(deployable.entry_path))
        self._names = [spec.name for spec in deployable.outputs]
        self._runs = 0
        self._rng = np.random.default_rng(0)

    def _inject(self) -> None:
        fault = self._config.fault
        if fault == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif fault == "hang":
            time.sleep(3600)
        elif fault == "raise":
            raise RuntimeError("injected runtime failure")
        elif fault == "memory":
            hoard = [bytearray(64 * 1024 * 1024) for _ in range(1024)]  # 64 GiB: hits any limit
            del hoard

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Plain mapping."""
        return dict(inputs)

    def run(self, feed: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        """Evaluate, after injecting a fault once ``after_runs`` runs have passed."""
        self._runs += 1
        cfg = self._config
        if cfg.fault_at == "run" and cfg.fault != "noise" and self._runs > cfg.after_runs:
            self._inject()
        outputs = [np.asarray(o) for o in self._evaluator.run(self._names, feed)]
        if self._config.fault == "noise":
            outputs = [
                o * (1 + self._config.noise * self._rng.standard_normal(o.shape)).astype(o.dtype)
                for o in outputs
            ]
        return outputs

    def synchronize(self) -> None:
        """Synchronous."""

    def info(self) -> dict[str, Any]:
        """Says it is the fake."""
        return {"runtime": "onnx.reference (fake)", "fault": self._config.fault}

    def close(self) -> None:
        """Nothing to release."""


class FakeSessionReportingLatency(FakeSession):
    """A fake session that also reports a latency of its own for each run, like a runtime
    timing itself inside the call (``report_latency: true``)."""

    def __init__(self, deployable: Deployable, options: SessionOptions) -> None:
        super().__init__(deployable, options)
        self._last_ns = 0

    def run(self, feed: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        """Evaluate, timing the evaluation alone."""
        start = time.perf_counter_ns()
        outputs = super().run(feed)
        self._last_ns = time.perf_counter_ns() - start
        return outputs

    def last_runtime_latency_ns(self) -> int:
        """The evaluation time of the last run, nanoseconds."""
        return self._last_ns


def open_fake_session(deployable: Deployable, options: SessionOptions) -> FakeSession:
    """Session factory of :class:`FakeToolchain` deployables."""
    if deployable.session_config.get("report_latency"):
        return FakeSessionReportingLatency(deployable, options)
    return FakeSession(deployable, options)


class FakeToolchain(Toolchain):
    """ONNX reference evaluator with fault injection (a test double, not a benchmark)."""

    name: ClassVar[str] = "fake"
    summary: ClassVar[str] = "Test double: onnx.reference evaluator with injectable faults."
    config_model: ClassVar[type[BaseModel]] = FakeConfig
    input_formats: ClassVar[tuple[str, ...]] = ("onnx",)

    @classmethod
    def availability(cls) -> Availability:
        """Needs onnx only."""
        return Availability.of_modules("onnx", extra="onnx")

    @classmethod
    def tool_version(cls) -> str | None:
        """The onnx package's version."""
        return distribution_version("onnx")

    def reference_config(self) -> BaseModel:
        """No faults."""
        return FakeConfig()

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Refuses non-ONNX models, like a real toolchain would."""
        if problem.model_format != "onnx":
            return [
                Finding(severity=Severity.ERROR, code="unsupported-format", message="ONNX only")
            ]
        return []

    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Copy the model (one logged step), optionally failing that step."""
        cfg = cast(FakeConfig, config)
        workdir.mkdir(parents=True, exist_ok=True)
        pipeline = Pipeline()
        with pipeline.step(
            "copy", "fake", self.tool_version() or "?", {"input.onnx": problem.model_path}
        ) as step:
            target = step.output(workdir / "model.onnx")
            shutil.copyfile(problem.model_path, target)
            step.log("copied the model")
            if cfg.fail_build:
                raise RuntimeError("injected build failure")
        deployable = Deployable(
            toolchain=self.name,
            kind="python-session",
            session_factory="deploybench.testing.fakes:open_fake_session",
            entry=target.name,
            files=[
                DeployableFile(
                    path=target.name,
                    sha256=sha256_file(target),
                    size=target.stat().st_size,
                    role="model",
                )
            ],
            session_config=cfg.model_dump(),
            inputs=problem.inputs,
            outputs=problem.outputs,
            steps=pipeline.steps,
            tool_versions={"onnx": self.tool_version() or "?"},
            root=workdir,
        )
        deployable.write_manifest()
        return deployable
