"""A stand-in for the C generator's output (dense + ReLU with const weights behind the ``dbm``
API), its hang/fault variants, and the run folders the embedded tests use."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from deploybench.targets.embedded.boards import get_board
from deploybench.targets.embedded.compile import CompileOptions, FirmwareBuild, compile_firmware
from deploybench.targets.embedded.run_config import write_inputs, write_run_config

REQUIRED_TOOLS = {
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-size": "binutils-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
    "qemu-aarch64": "qemu-user",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "gcc": "gcc",
}

N_IN, N_OUT = 16, 8
_RNG = np.random.default_rng(20261128)
# Multiples of 1/64 keep every product and partial sum exact in float32, so the firmware's
# results equal numpy's whatever the summation order or FMA contraction.
WEIGHTS = (_RNG.integers(-64, 64, size=(N_OUT, N_IN)) / 64).astype(np.float32)
BIAS = (_RNG.integers(-64, 64, size=N_OUT) / 64).astype(np.float32)
SAMPLES = (_RNG.integers(-32, 32, size=(5, N_IN)) / 8).astype(np.float32)

_HEADER = f"""#ifndef MODEL_H
#define MODEL_H
#define DBM_INPUT_SIZE {N_IN}
#define DBM_OUTPUT_SIZE {N_OUT}
#define DBM_ARENA_BYTES 0
int dbm_run(const float *input, float *output);
#endif
"""

_BODIES = {
    "dense": """
    for (int o = 0; o < DBM_OUTPUT_SIZE; o++) {
        float acc = bias[o];
        for (int i = 0; i < DBM_INPUT_SIZE; i++) {
            acc += weights[o][i] * input[i];
        }
        output[o] = acc > 0.0f ? acc : 0.0f;
    }
    return 0;
""",
    "hang": """
    (void)input; (void)output;
    for (;;) {
        __asm__ volatile("" ::: "memory");
    }
""",
    # An undefined instruction: UsageFault on every Cortex-M.
    "fault": """
    (void)input; (void)output;
    __asm__ volatile("udf #0");
    return 0;
""",
    # A store to unmapped memory: a precise BusFault.
    "badptr": """
    (void)input;
    *(volatile float *)0xF0000000u = output[0];
    return 0;
""",
}


def expected_outputs(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """What the stand-in model computes, on the host."""
    result: npt.NDArray[np.float32] = np.maximum(samples @ WEIGHTS.T + BIAS, 0).astype(np.float32)
    return result


def write_model(folder: Path, variant: str = "dense") -> Path:
    """Write model.c/model.h of ``variant`` into ``folder``; returns model.c."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ",\n".join("    {" + ", ".join(f"{float(w)!r}f" for w in row) + "}" for row in WEIGHTS)
    bias = ", ".join(f"{float(b)!r}f" for b in BIAS)
    (folder / "model.h").write_text(_HEADER)
    source = folder / "model.c"
    source.write_text(
        '#include "model.h"\n'
        f"static const float weights[{N_OUT}][{N_IN}] = {{\n{rows}\n}};\n"
        f"static const float bias[{N_OUT}] = {{{bias}}};\n"
        "int dbm_run(const float *input, float *output)\n{\n"
        "    (void)weights; (void)bias;\n"
        f"{_BODIES[variant]}}}\n"
    )
    return source


def prepare_run(workdir: Path, inferences: int, with_outputs: bool = True) -> Path:
    """A fresh run folder with the inputs and run.cfg."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_inputs(workdir / "inputs.bin", SAMPLES)
    write_run_config(
        workdir, inferences, len(SAMPLES), "inputs.bin", "outputs.bin" if with_outputs else None
    )
    return workdir


BuildFn = Callable[..., FirmwareBuild]


def require_cross_tools() -> None:
    """Fail (not skip) with the install command when a cross tool is missing: CI has them."""
    missing = {tool: pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None}
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        pytest.fail(
            f"embedded tests need {', '.join(missing)}; install with: apt-get install {packages}",
            pytrace=False,
        )


def firmware_builder(root: Path) -> BuildFn:
    """``build(board, variant="dense")``: the stand-in compiled once per builder."""
    cache: dict[tuple[str, str], FirmwareBuild] = {}

    def build(board: str, variant: str = "dense") -> FirmwareBuild:
        if (board, variant) not in cache:
            folder = root / f"{board}-{variant}"
            source = write_model(folder / "src", variant)
            cache[board, variant] = compile_firmware(
                [source], [source.parent], get_board(board), CompileOptions(), folder / "build"
            )
        return cache[board, variant]

    return build
