"""The same harness and model as Linux programs: host and aarch64 under qemu-aarch64."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from embedded_stand_in import (
    N_OUT,
    SAMPLES,
    expected_outputs,
    prepare_run,
    require_cross_tools,
    write_model,
)

from deploybench.targets.embedded.compile import CompileOptions, compile_linux
from deploybench.targets.embedded.cycle_model import instructions_per_inference
from deploybench.targets.embedded.elf_size import elf_memory
from deploybench.targets.embedded.qemu import run_aarch64, run_host


@pytest.fixture(scope="module")
def cross_tools() -> None:
    """The cross tools must be installed (a failure, not a skip, when they are not)."""
    require_cross_tools()


def test_host_build_runs(cross_tools: None, tmp_path: Path) -> None:
    source = write_model(tmp_path / "src")
    build = compile_linux([source], [source.parent], "host", CompileOptions(), tmp_path / "b")
    run = run_host(build.elf, prepare_run(tmp_path / "run", 4), timeout_s=30)
    assert run.ok, run.stdout + run.stderr
    outputs = np.fromfile(tmp_path / "run" / "outputs.bin", dtype="<f4").reshape(-1, N_OUT)
    np.testing.assert_array_equal(outputs, expected_outputs(SAMPLES))
    size = subprocess.run(["size", str(build.elf)], capture_output=True, text=True, check=True)
    memory = elf_memory(build.elf)
    assert [memory.text, memory.data, memory.bss] == [
        int(v) for v in size.stdout.splitlines()[1].split()[:3]
    ]


def test_aarch64_static_build_under_qemu_user(cross_tools: None, tmp_path: Path) -> None:
    source = write_model(tmp_path / "src")
    build = compile_linux([source], [source.parent], "aarch64", CompileOptions(), tmp_path / "b")
    assert "-static" in build.commands[-1]
    counts: dict[int, list[int]] = {}
    for n in (0, 10):
        for i in range(2):
            run = run_aarch64(
                build.elf, prepare_run(tmp_path / f"{n}-{i}", n, with_outputs=False), 30, True
            )
            assert run.ok, run.stdout + run.stderr
            assert run.instructions is not None
            counts.setdefault(n, []).append(run.instructions)
    functional = run_aarch64(build.elf, prepare_run(tmp_path / "functional", 0), 30)
    assert functional.ok, functional.stdout + functional.stderr
    outputs = np.fromfile(tmp_path / "functional" / "outputs.bin", dtype="<f4")
    np.testing.assert_array_equal(outputs.reshape(-1, N_OUT), expected_outputs(SAMPLES))
    assert counts[0][0] == counts[0][1] and counts[10][0] == counts[10][1]
    assert instructions_per_inference(counts[10][0], counts[0][0], 10) > 0
    size = subprocess.run(
        ["aarch64-linux-gnu-size", str(build.elf)], capture_output=True, text=True, check=True
    )
    memory = elf_memory(build.elf)
    assert [memory.text, memory.data, memory.bss] == [
        int(v) for v in size.stdout.splitlines()[1].split()[:3]
    ]


def test_a_crash_on_linux_is_reported_as_a_fault(cross_tools: None, tmp_path: Path) -> None:
    source = write_model(tmp_path / "src", "badptr")
    for arch in ("host", "aarch64"):
        build = compile_linux([source], [source.parent], arch, CompileOptions(), tmp_path / arch)
        workdir = prepare_run(tmp_path / f"run-{arch}", 1)
        run = (
            run_host(build.elf, workdir, 30)
            if arch == "host"
            else run_aarch64(build.elf, workdir, 30)
        )
        assert run.fault == "signal SIGSEGV" and not run.timed_out, (arch, run)
