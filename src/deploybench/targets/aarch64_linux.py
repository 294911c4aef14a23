"""aarch64 Linux under QEMU user-mode emulation (``qemu-aarch64``): a static binary.

Generated C is compiled with ``aarch64-linux-gnu-gcc`` into a static executable and run by
``qemu-aarch64`` (binfmt is not needed); instructions are counted exactly by the TCG plugin.
An application core has no meaningful average CPI, so latency is reported unavailable.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from deploybench.targets.base import (
    ExecutionRequest,
    ProgressCallback,
    Provenance,
    RawRun,
    TargetInfo,
)
from deploybench.targets.simulator import QemuTarget
from deploybench.toolchains.base import C_SOURCE

if TYPE_CHECKING:
    from deploybench.targets.embedded.compile import FirmwareBuild


class QemuAarch64LinuxTarget(QemuTarget):
    """A static aarch64 Linux binary under qemu-aarch64: exact instruction counts."""

    name: ClassVar[str] = "qemu-aarch64-linux"
    summary: ClassVar[str] = (
        "aarch64 Linux under QEMU user-mode emulation: generated C as a static binary; "
        "exact instruction counts, binary size and stack."
    )
    tools: ClassVar[tuple[str, ...]] = ("aarch64-linux-gnu-gcc", "qemu-aarch64")

    def describe(self) -> TargetInfo:
        """An aarch64 Linux process; no memory capacities (it is whatever the host gives)."""
        return TargetInfo(
            name=self.name,
            kind="simulator",
            description="aarch64 Linux, static binary under qemu-aarch64 user-mode emulation",
            cpu_model="aarch64 (QEMU max CPU)",
            cores=1,
            isa_features=["aarch64"],
            provenance=Provenance.SIMULATED,
            executes=[C_SOURCE],
            capabilities=["instructions", "binary-size", "stack"],
            extra={"cpu": "aarch64"},
        )

    def execute(
        self, request: ExecutionRequest, progress: ProgressCallback | None = None
    ) -> RawRun:
        """Compile a static binary, then run it under qemu-aarch64 for each pass."""
        from deploybench.targets.embedded.compile import CompileOptions, compile_linux
        from deploybench.targets.embedded.cycle_model import cycle_model_unavailable
        from deploybench.targets.embedded.qemu import run_aarch64
        from deploybench.targets.firmware_runs import Platform, execute_firmware

        def compile_static(
            sources: list[Path], include: list[Path], options: CompileOptions, out: Path
        ) -> FirmwareBuild:
            # The Cortex-M options do not apply to an aarch64 build.
            plain = options.model_copy(update={"cpu": None, "float_abi": None})
            return compile_linux(sources, include, "aarch64", plain, out)

        platform = Platform(
            name=self.name,
            tool="aarch64-linux-gnu-gcc",
            compile=compile_static,
            boot=lambda binary, folder, timeout, count: run_aarch64(binary, folder, timeout, count),
            cycles=lambda per: None,
            cycles_unavailable=cycle_model_unavailable("aarch64"),
            memories=[],
            environment={"target": self.name, "qemu": self.tool_version()},
        )
        return execute_firmware(request, platform, progress)
