"""Low-level embedded layer: boards, firmware builds, QEMU runs and their analysis.

Submodules are imported on use (nothing here runs a tool at import time):
:mod:`.boards`, :mod:`.compile`, :mod:`.qemu`, :mod:`.tcg_plugin`, :mod:`.elf_size`,
:mod:`.stack`, :mod:`.cycle_model`, :mod:`.run_config`.
"""

from __future__ import annotations

from deploybench.targets.embedded.boards import BOARDS, Board, UnknownBoardError, get_board
from deploybench.targets.embedded.errors import CompileError, ToolMissingError

__all__ = [
    "BOARDS",
    "Board",
    "CompileError",
    "ToolMissingError",
    "UnknownBoardError",
    "get_board",
]
