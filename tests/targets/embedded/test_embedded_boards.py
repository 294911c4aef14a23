"""Boards, linker scripts, the cycle model and run.cfg: pure Python, no tools needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploybench.errors import UserError
from deploybench.targets.embedded.boards import BOARDS, UnknownBoardError, get_board
from deploybench.targets.embedded.compile import linker_script
from deploybench.targets.embedded.cycle_model import (
    cycle_model_unavailable,
    estimate_cycles,
    instructions_per_inference,
)
from deploybench.targets.embedded.run_config import read_outputs, write_inputs, write_run_config


def test_the_five_boards_are_known() -> None:
    assert set(BOARDS) == {"mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "lm3s6965evb"}
    lm3s = get_board("lm3s6965evb")
    assert (lm3s.cpu, lm3s.flash_size, lm3s.ram_size) == ("cortex-m3", 256 * 1024, 64 * 1024)
    an505 = get_board("mps2-an505")
    assert (an505.flash_origin, an505.ram_origin) == (0x1000_0000, 0x3800_0000)
    assert [board.fpu is None for board in BOARDS.values()] == [True, False, False, False, True]


def test_unknown_board_lists_the_known_ones() -> None:
    with pytest.raises(UnknownBoardError) as caught:
        get_board("stm32f4-discovery")
    assert isinstance(caught.value, UserError)
    for name in BOARDS:
        assert name in str(caught.value)


def test_memories_are_flash_and_ram() -> None:
    memories = get_board("lm3s6965evb").memories()
    assert [(m.kind, m.size_bytes) for m in memories] == [("flash", 262144), ("ram", 65536)]


def test_linker_script_carries_the_memory_map() -> None:
    script = linker_script(get_board("mps2-an505"), stack_reserve=4096)
    assert "ORIGIN = 0x10000000, LENGTH = 0x00400000" in script
    assert "ORIGIN = 0x38000000, LENGTH = 0x00400000" in script
    assert "@" not in script


def test_cycle_estimate_scales_with_the_published_dmips() -> None:
    m3 = estimate_cycles(1000, "cortex-m3", clock_hz=25_000_000)
    m7 = estimate_cycles(1000, "cortex-m7")
    assert m3 is not None and m7 is not None
    assert m3.cpi == pytest.approx(1.25)
    assert m3.seconds_at_clock == pytest.approx(1250 / 25e6)
    assert m7.cpi < m3.cpi and m7.seconds_at_clock is None
    assert "DMIPS" in m3.source_citation


def test_no_cycle_model_for_aarch64_user_mode() -> None:
    assert estimate_cycles(1000, "aarch64") is None
    reason = cycle_model_unavailable("aarch64")
    assert reason is not None and "user mode" in reason
    assert cycle_model_unavailable("cortex-m4") is None


def test_instructions_per_inference() -> None:
    assert instructions_per_inference(12_000, 2_000, 10) == 1000.0
    with pytest.raises(ValueError):
        instructions_per_inference(1, 2, 10)
    with pytest.raises(ValueError):
        instructions_per_inference(10, 2, 0)


def test_run_config_round_trip(tmp_path: Path) -> None:
    config = write_run_config(tmp_path, 10, 3, "in.bin", None)
    assert "output -\n" in config.read_text()
    with pytest.raises(ValueError, match="no spaces"):
        write_run_config(tmp_path, 1, 1, "my inputs.bin", "out.bin")
    assert write_inputs(tmp_path / "x.bin", [[1.0, 2.0], [3.0, 4.0]]) == 2
    assert read_outputs(tmp_path / "x.bin", 2).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="multiple"):
        read_outputs(tmp_path / "x.bin", 3)
