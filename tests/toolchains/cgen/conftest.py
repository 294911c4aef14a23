"""Fixtures for the cgen code generator tests: generate + compile + load in one call, and the
digits models and data from the zoo (built once per test session)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from deploybench.toolchains.cgen.codegen import GeneratedModel, generate_c  # noqa: E402
from deploybench.toolchains.cgen.codegen.host import (  # noqa: E402
    HostModel,
    compile_host_library,
)

Build = Callable[..., tuple[GeneratedModel, HostModel]]


# Beyond the -std=c99 -Wall -Wextra the brief requires: no doubles sneaking into float math,
# no VLAs, no shadowing, and alignment-safe casts for strict-alignment MCUs.
STRICT_FLAGS = [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-Wdouble-promotion",
    "-Wvla",
    "-Wshadow",
    "-Wcast-align",
    "-O0",
    "-c",
]
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]


@pytest.fixture
def build_c(tmp_path: Path) -> Build:
    """Generate C for a model, check it compiles warning-free under strict flags (for the host
    and, when arm-none-eabi-gcc is installed, for a Cortex-M4), build the host library and load
    it: returns (GeneratedModel, HostModel)."""
    counter = iter(range(1000))

    def build(
        model: Any, prefix: str = "dbm", strict: bool = True
    ) -> tuple[GeneratedModel, HostModel]:
        out = tmp_path / f"gen{next(counter)}"
        generated = generate_c(model, out, prefix=prefix)
        if strict:
            _assert_warning_free(generated)
        library = compile_host_library(generated, out, opt_level="-O1")
        return generated, HostModel(library, generated)

    return build


def _assert_warning_free(generated: GeneratedModel) -> None:
    compilers = [["gcc"]]
    if shutil.which("arm-none-eabi-gcc"):
        compilers.append(["arm-none-eabi-gcc", *ARM_FLAGS])
    for compiler in compilers:
        result = subprocess.run(
            [*compiler, *STRICT_FLAGS, str(generated.source), "-o", str(generated.source) + ".o"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{compiler[0]}: {result.stderr}"


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    """The digits evaluation set: input (360, 64) float32 and labels."""
    from deploybench.zoo import build_dataset

    data = np.load(build_dataset("digits").path)
    return {"input": data["input"].astype(np.float32), "labels": data["labels"]}


@pytest.fixture(scope="session")
def zoo_path() -> Callable[[str], Path]:
    """Path of a zoo model's ONNX file (built on first use)."""
    from deploybench.zoo import build_model

    def path(name: str) -> Path:
        return Path(build_model(name).path)

    return path
