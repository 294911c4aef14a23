"""Cortex-M microcontroller boards emulated by QEMU (``qemu-system-arm``), bare metal.

Generated C is cross-compiled with ``arm-none-eabi-gcc`` for the board's core, linked with
the board's startup code and memory map, and booted fresh in QEMU for every pass. Flash, RAM
and stack come from the ELF; instructions are counted exactly by a TCG plugin; cycles and
latency are estimates from the core's cycle model (provenance ``simulated``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deploybench.targets.base import (
    ExecutionRequest,
    ProgressCallback,
    Provenance,
    RawRun,
    Target,
    TargetInfo,
)
from deploybench.targets.embedded.boards import BOARDS, Board, get_board
from deploybench.targets.simulator import QemuTarget
from deploybench.toolchains.base import C_SOURCE

if TYPE_CHECKING:
    from deploybench.targets.embedded.compile import CompileOptions, FirmwareBuild


class CortexMConfig(BaseModel):
    """``target.config`` of the Cortex-M target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    board: str = Field(
        default="mps2-an385",
        description=f"QEMU board: {', '.join(sorted(BOARDS))}.",
    )

    @field_validator("board")
    @classmethod
    def _known_board(cls, value: str) -> str:
        if value not in BOARDS:
            raise ValueError(f"unknown board '{value}'; choose one of: {', '.join(sorted(BOARDS))}")
        return value


def core_name(board: Board) -> str:
    """The core as the cgen ``cpu`` option names it: an M4 with its FPU is ``cortex-m4f``."""
    return "cortex-m4f" if board.cpu == "cortex-m4" and board.fpu else board.cpu


# Cores of the cgen ``cpu`` option that have no FPU: their code is built soft-float unless the
# config says otherwise, whatever FPU the board has.
_NO_FPU_CORES = ("cortex-m0", "cortex-m3", "cortex-m4")


def gcc_options(options: CompileOptions) -> CompileOptions:
    """The cgen ``cpu`` option in GCC's terms: ``cortex-m4f`` is ``-mcpu=cortex-m4`` with the
    board's FPU, and a core without FPU defaults to the soft float ABI."""
    if options.cpu is None:
        return options
    abi = options.float_abi
    if abi is None and options.cpu in _NO_FPU_CORES:
        abi = "soft"
    cpu = "cortex-m4" if options.cpu == "cortex-m4f" else options.cpu
    return options.model_copy(update={"cpu": cpu, "float_abi": abi})


class QemuCortexMTarget(QemuTarget):
    """A Cortex-M board in QEMU: bare-metal firmware, semihosting I/O, counted instructions."""

    name: ClassVar[str] = "qemu-cortex-m"
    summary: ClassVar[str] = (
        "Cortex-M boards in QEMU (mps2-an385/386/500/505, lm3s6965evb): generated C as "
        "bare-metal firmware; flash, RAM, stack, exact instruction counts, simulated cycles."
    )
    config_model: ClassVar[type[BaseModel] | None] = CortexMConfig
    tools: ClassVar[tuple[str, ...]] = ("arm-none-eabi-gcc", "qemu-system-arm")

    def __init__(self, config: CortexMConfig | None = None) -> None:
        self.config = config or CortexMConfig()
        self.board = get_board(self.config.board)

    @classmethod
    def configured(cls, config: BaseModel | None) -> Target:
        """The target for ``target.config`` (its board)."""
        return cls(config if isinstance(config, CortexMConfig) else None)

    def describe(self) -> TargetInfo:
        """The board: core, FPU, memories and clock; provenance ``simulated``."""
        board = self.board
        return TargetInfo(
            name=self.name,
            kind="simulator",
            description=f"{board.description} (QEMU {board.qemu_machine})",
            cpu_model=board.cpu,
            cores=1,
            isa_features=[board.cpu, *([board.fpu] if board.fpu else [])],
            memories=board.memories(),
            provenance=Provenance.SIMULATED,
            executes=[C_SOURCE],
            capabilities=["instructions", "simulated-cycles", "flash", "ram", "stack"],
            extra={
                "board": board.name,
                "cpu": core_name(board),
                "fpu": board.fpu,
                "clock_hz": board.clock_hz,
                "clock_source": board.clock_source,
                "qemu_machine": board.qemu_machine,
            },
        )

    def execute(
        self, request: ExecutionRequest, progress: ProgressCallback | None = None
    ) -> RawRun:
        """Cross-compile for the board, then boot QEMU for each pass."""
        from deploybench.targets.embedded.compile import compile_firmware
        from deploybench.targets.embedded.cycle_model import (
            cycle_model_unavailable,
            estimate_cycles,
        )
        from deploybench.targets.embedded.qemu import run_cortex_m
        from deploybench.targets.firmware_runs import Platform, execute_firmware

        board = self.board
        # Cycles are estimated for the board's pipeline, whatever core the code targets.
        core = board.cpu

        def compile_for_board(
            sources: list[Path], include: list[Path], options: CompileOptions, out: Path
        ) -> FirmwareBuild:
            return compile_firmware(sources, include, board, gcc_options(options), out)

        platform = Platform(
            name=f"{self.name}:{board.name}",
            tool="arm-none-eabi-gcc",
            compile=compile_for_board,
            boot=lambda elf, folder, timeout, count: run_cortex_m(
                elf, board, folder, timeout, count
            ),
            cycles=lambda per: estimate_cycles(round(per), core, board.clock_hz),
            cycles_unavailable=cycle_model_unavailable(core),
            memories=board.memories(),
            environment={
                "target": self.name,
                "board": board.model_dump(mode="json"),
                "qemu": self.tool_version(),
                "cycle_model_core": core,
            },
        )
        return execute_firmware(request, platform, progress)
