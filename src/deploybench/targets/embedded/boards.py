"""Cortex-M boards that QEMU emulates, with the memory maps and clocks the firmware is built for.

Memory maps follow QEMU's board models (``hw/arm/mps2.c``, ``hw/arm/mps2-tz.c``,
``hw/arm/stellaris.c``), which follow ARM's application notes AN385, AN386, AN500 and AN505 and
TI's LM3S6965 datasheet. On the MPS2 images the 4 MiB ZBT SSRAM1 holds code (it plays the role
of flash) and ZBT SSRAM2/3 the data. The clock is the one the real board runs its core at; QEMU
itself has no timing model, so it only feeds :mod:`deploybench.targets.embedded.cycle_model`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from deploybench.errors import UserError
from deploybench.targets.base import MemoryRegion

FloatAbi = Literal["soft", "softfp", "hard"]
Fpu = Literal["fpv4-sp-d16", "fpv5-d16", "fpv5-sp-d16"]

KIB = 1024
MIB = 1024 * KIB


class UnknownBoardError(UserError):
    """A board name that is not in :data:`BOARDS`; the message lists the known ones."""


class Board(BaseModel):
    """A QEMU-emulated microcontroller board: core, memory map, FPU and nominal clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    cpu: str = Field(description="GCC -mcpu value, e.g. cortex-m3.")
    qemu_machine: str = Field(description="qemu-system-arm -M value.")
    flash_origin: int
    flash_size: int
    ram_origin: int
    ram_size: int
    fpu: Fpu | None = None
    float_abi: FloatAbi = "soft"
    clock_hz: int = Field(description="Core clock the cycle model converts cycles with.")
    clock_source: str = Field(description="Where clock_hz comes from.")
    description: str

    def memories(self) -> list[MemoryRegion]:
        """Flash (code) and RAM capacities as target memories."""
        return [
            MemoryRegion(name="flash", kind="flash", size_bytes=self.flash_size),
            MemoryRegion(name="ram", kind="ram", size_bytes=self.ram_size),
        ]


_MPS2_CLOCK = "hw/arm/mps2.c SYSCLK_FRQ = 25 MHz (MPS2 FPGA images clock the core at 25 MHz)"

BOARDS: dict[str, Board] = {
    board.name: board
    for board in (
        Board(
            name="mps2-an385",
            cpu="cortex-m3",
            qemu_machine="mps2-an385",
            flash_origin=0x0000_0000,
            flash_size=4 * MIB,
            ram_origin=0x2000_0000,
            ram_size=4 * MIB,
            clock_hz=25_000_000,
            clock_source=_MPS2_CLOCK,
            description="ARM MPS2 AN385, Cortex-M3 (no FPU); ZBT SSRAM1 code, SSRAM2/3 data",
        ),
        Board(
            name="mps2-an386",
            cpu="cortex-m4",
            qemu_machine="mps2-an386",
            flash_origin=0x0000_0000,
            flash_size=4 * MIB,
            ram_origin=0x2000_0000,
            ram_size=4 * MIB,
            fpu="fpv4-sp-d16",
            float_abi="hard",
            clock_hz=25_000_000,
            clock_source=_MPS2_CLOCK,
            description="ARM MPS2 AN386, Cortex-M4F (single-precision FPU)",
        ),
        Board(
            name="mps2-an500",
            cpu="cortex-m7",
            qemu_machine="mps2-an500",
            flash_origin=0x0000_0000,
            flash_size=4 * MIB,
            ram_origin=0x2000_0000,
            ram_size=4 * MIB,
            fpu="fpv5-d16",
            float_abi="hard",
            clock_hz=25_000_000,
            clock_source=_MPS2_CLOCK,
            description="ARM MPS2 AN500, Cortex-M7 (double-precision FPU; caches not modelled)",
        ),
        Board(
            name="mps2-an505",
            cpu="cortex-m33",
            qemu_machine="mps2-an505",
            # QEMU boots the M33 in Secure state with VTOR_S = 0x10000000, so code and data
            # live at the Secure aliases of SSRAM1 (0x00000000) and SSRAM2/3 (0x28000000).
            flash_origin=0x1000_0000,
            flash_size=4 * MIB,
            ram_origin=0x3800_0000,
            ram_size=4 * MIB,
            fpu="fpv5-sp-d16",
            float_abi="hard",
            clock_hz=20_000_000,
            clock_source="hw/arm/mps2-tz.c sysclk_frq = 20 MHz for AN505 (AN505 FPGA image)",
            description="ARM MPS2 AN505, Cortex-M33 with TrustZone (runs in Secure state)",
        ),
        Board(
            name="lm3s6965evb",
            cpu="cortex-m3",
            qemu_machine="lm3s6965evb",
            flash_origin=0x0000_0000,
            flash_size=256 * KIB,
            ram_origin=0x2000_0000,
            ram_size=64 * KIB,
            clock_hz=50_000_000,
            clock_source="TI LM3S6965 datasheet: 50 MHz maximum core clock (PLL)",
            description="TI Stellaris LM3S6965 evaluation board, Cortex-M3, 256 KiB flash, "
            "64 KiB SRAM",
        ),
    )
}


def get_board(name: str) -> Board:
    """Return the board called ``name``; :class:`UnknownBoardError` lists the known boards."""
    try:
        return BOARDS[name]
    except KeyError:
        known = ", ".join(sorted(BOARDS))
        raise UnknownBoardError(
            f"unknown embedded board {name!r}; choose one of: {known}"
        ) from None
