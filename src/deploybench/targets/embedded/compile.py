"""Cross-compiling a generated C model with the deploybench harness.

Cortex-M firmware is built with ``arm-none-eabi-gcc`` and newlib's semihosting library
(``--specs=rdimon.specs``) against the startup code and a linker script generated from the
:class:`~deploybench.targets.embedded.boards.Board`. Linux builds (host ``gcc`` or static
``aarch64-linux-gnu-gcc``) compile the same ``harness.c`` with native stdio.

Every object is compiled separately so GCC writes ``<object>.su`` (stack usage) and ``<object>.ci``
(call graph) next to it; :mod:`deploybench.targets.embedded.stack` reads them.
"""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from deploybench.errors import CompatibilityError
from deploybench.targets.embedded.boards import Board, FloatAbi
from deploybench.targets.embedded.errors import CompileError, ToolMissingError
from deploybench.targets.embedded.tools import first_line_of, require_tool

LinuxArch = Literal["host", "aarch64"]

_COMPILE_TIMEOUT_S = 600
_COMMON_CFLAGS = (
    "-std=gnu11",
    "-g",
    "-Wall",
    "-ffunction-sections",
    "-fdata-sections",
    "-fstack-usage",
    "-fcallgraph-info=su",
)


class CompileOptions(BaseModel):
    """How to compile: optimisation level, float ABI and CPU overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    opt_level: Literal["-O2", "-Os", "-O3"] = "-O2"
    float_abi: FloatAbi | None = Field(
        default=None, description="None: the board's default (hard on FPU cores)."
    )
    cpu: str | None = Field(default=None, description="-mcpu override; None: the board's core.")
    stack_reserve: int = Field(
        default=16 * 1024, ge=0, description="Bytes of RAM kept free for the stack (link check)."
    )


class FirmwareBuild(BaseModel):
    """A built program and everything needed to reproduce and analyse it."""

    model_config = ConfigDict(frozen=True)

    elf: Path
    target: str = Field(description="Board name, linux-host or linux-aarch64.")
    cpu: str
    map_file: Path | None
    stack_usage_files: list[Path] = Field(description="GCC -fstack-usage .su files.")
    callgraph_files: list[Path] = Field(description="GCC -fcallgraph-info=su .ci (VCG) files.")
    commands: list[list[str]] = Field(description="Exact compiler and linker command lines.")
    compiler_version: str
    log: str


def firmware_dir() -> Path:
    """Folder holding startup.c, harness.c and the linker script template (package data)."""
    return Path(str(resources.files("deploybench.targets.embedded") / "firmware"))


def linker_script(board: Board, stack_reserve: int) -> str:
    """The linker script text for ``board`` (memory map substituted into the template)."""
    template = (firmware_dir() / "link.ld.in").read_text()
    values = {
        "FLASH_ORIGIN": board.flash_origin,
        "FLASH_SIZE": board.flash_size,
        "RAM_ORIGIN": board.ram_origin,
        "RAM_SIZE": board.ram_size,
        "STACK_RESERVE": stack_reserve,
    }
    for key, value in values.items():
        template = template.replace(f"@{key}@", f"0x{value:08x}")
    return template


def _arm_cpu_flags(board: Board, options: CompileOptions) -> tuple[str, list[str]]:
    cpu = options.cpu or board.cpu
    abi = options.float_abi or board.float_abi
    flags = [f"-mcpu={cpu}", "-mthumb", f"-mfloat-abi={abi}"]
    if abi != "soft":
        if board.fpu is None:
            raise CompatibilityError(
                f"board {board.name} ({board.cpu}) has no FPU, so float ABI {abi!r} cannot run "
                "there; use float_abi='soft' or a board with an FPU (mps2-an386, -an500, -an505)"
            )
        flags.append(f"-mfpu={board.fpu}")
    return cpu, flags


def _run(command: list[str], cwd: Path, log: list[str], what: str) -> None:
    log.append("$ " + " ".join(command))
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=_COMPILE_TIMEOUT_S, check=False
    )
    output = done.stdout + done.stderr
    if output:
        log.append(output.rstrip())
    if done.returncode != 0:
        raise CompileError(f"{what} failed (exit {done.returncode})", command, output)


def _object_names(sources: list[Path]) -> list[str]:
    """Object stems, unique even when two sources share a file name."""
    names: list[str] = []
    for index, source in enumerate(sources):
        stem = source.stem
        names.append(stem if stem not in names else f"{stem}_{index}")
    return names


def _build(
    compiler: Path,
    sources: list[Path],
    include_dirs: list[Path],
    cflags: list[str],
    ldflags: list[str],
    out_dir: Path,
    target: str,
    cpu: str,
) -> FirmwareBuild:
    out_dir = out_dir.resolve()
    obj_dir = out_dir / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    includes = [f"-I{path.resolve()}" for path in include_dirs]
    log: list[str] = []
    commands: list[list[str]] = []
    objects: list[Path] = []
    for source, name in zip(sources, _object_names(sources), strict=True):
        obj = obj_dir / f"{name}.o"
        command = [str(compiler), *cflags, *includes, "-c", str(source.resolve()), "-o", str(obj)]
        commands.append(command)
        _run(command, out_dir, log, f"compiling {source.name}")
        objects.append(obj)
    elf = out_dir / "firmware.elf"
    map_file = out_dir / "firmware.map"
    link = [
        str(compiler),
        *cflags,
        *[str(obj) for obj in objects],
        *ldflags,
        f"-Wl,-Map={map_file}",
        "-o",
        str(elf),
    ]
    commands.append(link)
    _run(link, out_dir, log, "linking")
    version = first_line_of([str(compiler), "--version"]) or "unknown"
    return FirmwareBuild(
        elf=elf,
        target=target,
        cpu=cpu,
        map_file=map_file,
        stack_usage_files=sorted(obj_dir.glob("*.su")),
        callgraph_files=sorted(obj_dir.glob("*.ci")),
        commands=commands,
        compiler_version=version,
        log="\n".join(log),
    )


def _require_newlib(compiler: Path) -> None:
    # GCC echoes the bare name back when it cannot find the file in its search path.
    found = first_line_of([str(compiler), "-print-file-name=rdimon.specs"])
    if found is None or not Path(found).is_file():
        raise ToolMissingError(
            "newlib's semihosting library (rdimon.specs) is missing; run: apt-get install "
            "libnewlib-arm-none-eabi"
        )


def compile_firmware(
    sources: list[Path],
    include_dirs: list[Path],
    board: Board,
    options: CompileOptions,
    out_dir: Path,
    *,
    with_harness: bool = True,
) -> FirmwareBuild:
    """Build a semihosting Cortex-M ELF for ``board`` from model ``sources``.

    ``startup.c`` is always added; ``harness.c`` (which provides ``main``) too unless
    ``with_harness`` is False. ``include_dirs`` must make ``model.h`` reachable. Raises
    :class:`ToolMissingError` without the toolchain, :class:`CompatibilityError` for an FPU ABI
    on a board without FPU and :class:`CompileError` (with the compiler output) on failure,
    including an image that does not fit the board's flash or RAM.
    """
    compiler = require_tool("arm-none-eabi-gcc")
    _require_newlib(compiler)
    cpu, cpu_flags = _arm_cpu_flags(board, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    script = out_dir / f"{board.name}.ld"
    script.write_text(linker_script(board, options.stack_reserve))
    firmware = firmware_dir()
    all_sources = [firmware / "startup.c", *([firmware / "harness.c"] if with_harness else [])]
    cflags = [*cpu_flags, options.opt_level, *_COMMON_CFLAGS]
    ldflags = [
        f"-T{script.resolve()}",
        "--specs=rdimon.specs",
        "-nostartfiles",
        "-Wl,--gc-sections",
        "-lm",
    ]
    return _build(
        compiler, [*all_sources, *sources], include_dirs, cflags, ldflags, out_dir, board.name, cpu
    )


def compile_linux(
    sources: list[Path],
    include_dirs: list[Path],
    arch: LinuxArch,
    options: CompileOptions,
    out_dir: Path,
    *,
    with_harness: bool = True,
) -> FirmwareBuild:
    """Build the harness and model ``sources`` as a Linux program for the host or aarch64.

    The aarch64 build is static so ``qemu-aarch64`` runs it without a sysroot. ``float_abi``
    does not apply to these targets and is ignored; ``cpu`` becomes ``-mcpu`` (aarch64) or
    ``-march`` (host).
    """
    compiler = require_tool("gcc" if arch == "host" else "aarch64-linux-gnu-gcc")
    cflags = [options.opt_level, *_COMMON_CFLAGS]
    if options.cpu is not None:
        cflags.append(f"-mcpu={options.cpu}" if arch == "aarch64" else f"-march={options.cpu}")
    ldflags = ["-Wl,--gc-sections", "-lm", *(["-static"] if arch == "aarch64" else [])]
    harness = [firmware_dir() / "harness.c"] if with_harness else []
    return _build(
        compiler,
        [*harness, *sources],
        include_dirs,
        cflags,
        ldflags,
        out_dir,
        f"linux-{arch}",
        options.cpu or arch,
    )
