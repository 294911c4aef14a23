"""Cortex-M firmware of the stand-in model under QEMU: outputs, instruction counts, watchdog,
faults, flash/RAM and stack."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from embedded_stand_in import (
    N_OUT,
    SAMPLES,
    BuildFn,
    expected_outputs,
    firmware_builder,
    prepare_run,
    require_cross_tools,
    write_model,
)

from deploybench.errors import CompatibilityError
from deploybench.targets.embedded.boards import BOARDS, get_board
from deploybench.targets.embedded.compile import CompileOptions, compile_firmware
from deploybench.targets.embedded.cycle_model import estimate_cycles, instructions_per_inference
from deploybench.targets.embedded.elf_size import elf_memory
from deploybench.targets.embedded.errors import CompileError, ToolMissingError
from deploybench.targets.embedded.qemu import FAULT_EXIT_CODE, qemu_version, run_cortex_m
from deploybench.targets.embedded.run_config import read_outputs
from deploybench.targets.embedded.stack import worst_stack
from deploybench.targets.embedded.tcg_plugin import plugin_library


@pytest.fixture(scope="module")
def cross_tools() -> None:
    """The cross tools must be installed (a failure, not a skip, when they are not)."""
    require_cross_tools()


@pytest.fixture(scope="module")
def firmware(cross_tools: None, tmp_path_factory: pytest.TempPathFactory) -> BuildFn:
    """The stand-in built once per (board, variant) for this module."""
    return firmware_builder(tmp_path_factory.mktemp("embedded-builds"))


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_outputs_match_the_host_computation(firmware: BuildFn, board: str, tmp_path: Path) -> None:
    build = firmware(board)
    run = run_cortex_m(build.elf, get_board(board), prepare_run(tmp_path, 3), timeout_s=30)
    assert run.ok, run.stdout + run.stderr
    assert "DEPLOYBENCH-DONE inferences=3 samples=5" in run.stdout + run.stderr
    outputs = read_outputs(tmp_path / "outputs.bin", N_OUT)
    np.testing.assert_array_equal(outputs, expected_outputs(SAMPLES))


@pytest.mark.parametrize("board", ["mps2-an385", "mps2-an386"])
def test_instruction_counts_are_exact_and_reproducible(
    firmware: BuildFn, board: str, tmp_path: Path
) -> None:
    build, target = firmware(board), get_board(board)
    counts = {}
    for n in (0, 10):
        runs = [
            run_cortex_m(
                build.elf,
                target,
                prepare_run(tmp_path / f"{n}-{i}", n, with_outputs=False),
                30,
                True,
            )
            for i in range(2)
        ]
        assert all(run.ok for run in runs)
        assert runs[0].instructions == runs[1].instructions
        assert runs[0].instructions is not None
        counts[n] = runs[0].instructions
    per_inference = instructions_per_inference(counts[10], counts[0], 10)
    assert per_inference > 100  # 128 multiply-adds at least
    estimate = estimate_cycles(round(per_inference), target.cpu, target.clock_hz)
    assert estimate is not None and estimate.cycles > per_inference * 0.5


def test_a_hanging_model_is_killed_by_the_watchdog(firmware: BuildFn, tmp_path: Path) -> None:
    build = firmware("mps2-an385", "hang")
    run = run_cortex_m(build.elf, get_board("mps2-an385"), prepare_run(tmp_path, 1), 3, True)
    assert run.timed_out and run.exit_code is None and run.fault is None
    assert run.instructions is None
    assert 3 <= run.wall_seconds < 10


@pytest.mark.parametrize(
    ("board", "variant", "kind", "cfsr_bit"),
    [
        ("mps2-an385", "fault", "UsageFault", 1 << 16),  # UNDEFINSTR
        ("mps2-an505", "badptr", "BusFault", 1 << 9),  # PRECISERR
    ],
)
def test_a_faulting_model_is_reported(
    firmware: BuildFn, tmp_path: Path, board: str, variant: str, kind: str, cfsr_bit: int
) -> None:
    build = firmware(board, variant)
    run = run_cortex_m(build.elf, get_board(board), prepare_run(tmp_path, 1), 30)
    assert not run.timed_out
    assert run.exit_code == FAULT_EXIT_CODE
    assert run.fault is not None and run.fault.startswith(kind), run.fault
    fields = dict(re.findall(r"(\w+)=(0x[0-9a-f]+)", run.fault))
    assert int(fields["cfsr"], 16) & cfsr_bit
    symbols = subprocess.run(
        ["arm-none-eabi-nm", str(build.elf)], capture_output=True, text=True, check=True
    ).stdout
    dbm_run = int(next(line for line in symbols.splitlines() if line.endswith(" dbm_run"))[:8], 16)
    assert 0 <= int(fields["pc"], 16) - dbm_run < 64


@pytest.mark.parametrize("board", ["mps2-an386", "lm3s6965evb"])
def test_elf_memory_equals_arm_none_eabi_size(firmware: BuildFn, board: str) -> None:
    build = firmware(board)
    printed = subprocess.run(
        ["arm-none-eabi-size", str(build.elf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1]
    text, data, bss = (int(value) for value in printed.split()[:3])
    memory = elf_memory(build.elf)
    assert (memory.text, memory.data, memory.bss) == (text, data, bss)
    assert memory.flash_bytes == text + data and memory.ram_bytes == data + bss
    assert memory.flash_bytes < get_board(board).flash_size


def test_worst_stack_reaches_dbm_run(firmware: BuildFn) -> None:
    report = worst_stack(firmware("mps2-an385"))
    assert report.bytes > 0
    assert report.path[:2] == ["Reset_Handler", "main"] and "dbm_run" in report.path
    assert "fopen" in report.uncounted and any(
        "not counted" in n or "0 bytes" in n for n in report.notes
    )
    model_only = worst_stack(firmware("mps2-an385"), roots=["dbm_run"])
    assert 0 < model_only.bytes < report.bytes and model_only.path[0] == "dbm_run"


def test_build_records_commands_and_analysis_files(firmware: BuildFn) -> None:
    build = firmware("mps2-an386")
    assert build.compiler_version.startswith("arm-none-eabi-gcc")
    link = build.commands[-1]
    for flag in (
        "-mcpu=cortex-m4",
        "-mfloat-abi=hard",
        "-mfpu=fpv4-sp-d16",
        "--specs=rdimon.specs",
    ):
        assert flag in link
    assert {path.stem for path in build.stack_usage_files} == {"startup", "harness", "model"}
    assert build.map_file is not None and build.map_file.is_file()


def test_hard_float_on_a_board_without_fpu_is_refused(tmp_path: Path) -> None:
    source = write_model(tmp_path / "src")
    with pytest.raises(CompatibilityError, match="no FPU"):
        compile_firmware(
            [source],
            [source.parent],
            get_board("mps2-an385"),
            CompileOptions(float_abi="hard"),
            tmp_path / "build",
        )


def test_compile_errors_carry_the_compiler_output(cross_tools: None, tmp_path: Path) -> None:
    source = write_model(tmp_path / "src")
    source.write_text(source.read_text() + "\nint broken(void) { return undeclared_name; }\n")
    with pytest.raises(CompileError) as caught:
        compile_firmware(
            [source], [source.parent], get_board("mps2-an385"), CompileOptions(), tmp_path / "build"
        )
    assert "undeclared_name" in caught.value.output


def test_image_too_big_for_ram_fails_the_link(cross_tools: None, tmp_path: Path) -> None:
    source = write_model(tmp_path / "src")
    # 80 KB of .bss used by dbm_run (so --gc-sections keeps it) cannot fit 64 KiB of SRAM.
    source.write_text(
        '#include "model.h"\nstatic float arena[20000];\n'
        "int dbm_run(const float *in, float *out)\n"
        "{ arena[0] = in[0]; out[0] = arena[1]; return 0; }\n"
    )
    with pytest.raises(CompileError, match="RAM"):
        compile_firmware(
            [source],
            [source.parent],
            get_board("lm3s6965evb"),
            CompileOptions(),
            tmp_path / "build",
        )


def test_missing_compiler_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    source = write_model(tmp_path / "src")
    with pytest.raises(ToolMissingError, match="apt-get install gcc-arm-none-eabi"):
        compile_firmware(
            [source], [source.parent], get_board("mps2-an385"), CompileOptions(), tmp_path / "build"
        )


def test_plugin_library_is_cached(cross_tools: None) -> None:
    first = plugin_library()
    assert first == plugin_library() and first.suffix == ".so"
    assert qemu_version() is not None
