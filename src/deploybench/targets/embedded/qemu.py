"""Running harness programs: Cortex-M firmware under qemu-system-arm, aarch64 Linux programs
under qemu-aarch64 (user mode) and host programs natively.

Every call starts a fresh process in its own process group; a watchdog (the ``communicate``
timeout, no polling) kills the whole group when the program runs past ``timeout_s``. With
``count_instructions`` the TCG plugin of :mod:`.tcg_plugin` counts executed guest instructions
exactly; the count is written when QEMU exits, so a killed run has none.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from deploybench.targets.embedded.boards import Board
from deploybench.targets.embedded.tcg_plugin import plugin_library
from deploybench.targets.embedded.tools import first_line_of, require_tool

FAULT_MARKER = "DEPLOYBENCH-FAULT:"
FAULT_EXIT_CODE = 3
"""Exit status the startup code's fault handlers give (see firmware/startup.c)."""

_FAULT_LINE = re.compile(r"DEPLOYBENCH-FAULT: ([^\r\n]+)")


@dataclass(frozen=True)
class QemuRun:
    """Outcome of one fresh run.

    ``exit_code`` is the program's status (semihosting ``exit`` on Cortex-M), None when the
    watchdog killed it; negative values are signals (Linux runs). ``fault`` is the fault line
    of the startup code (``HardFault pc=0x... cfsr=0x...``) or the fatal signal of a Linux
    program; a faulted run is not a timeout. ``instructions`` is None unless counting was asked
    for and the program exited by itself.
    """

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    fault: str | None
    instructions: int | None
    wall_seconds: float
    command: list[str]

    @property
    def ok(self) -> bool:
        """Exited with status 0, no fault and no timeout."""
        return self.exit_code == 0 and self.fault is None and not self.timed_out


def qemu_version() -> str | None:
    """Version of qemu-system-arm (e.g. ``7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)``)."""
    line = first_line_of(["qemu-system-arm", "--version"])
    if line is None:
        return None
    return line.split("version", 1)[1].strip() if "version" in line else line


def _qemu_option_value(value: str) -> str:
    """Escape a value for QEMU's comma-separated option syntax."""
    return value.replace(",", ",,")


def _plugin_args(count_file: str) -> list[str]:
    library = _qemu_option_value(str(plugin_library()))
    return ["-plugin", f"{library},outfile={_qemu_option_value(count_file)}"]


def _read_count(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    finally:
        path.unlink(missing_ok=True)
    return int(text) if text.isdigit() else None


def _execute(
    command: list[str], workdir: Path, timeout_s: float, count_file: Path | None
) -> QemuRun:
    started = time.perf_counter()
    # A new session makes the process a group leader, so the kill reaches anything it spawned.
    process = subprocess.Popen(
        command,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        # The group may have exited between the timeout and the kill.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    wall = time.perf_counter() - started
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    match = _FAULT_LINE.search(stdout + "\n" + stderr)
    fault = match.group(1).strip() if match else None
    code = None if timed_out else process.returncode
    if fault is None and code is not None and code < 0:
        fault = f"signal {_signal_name(-code)}"
    instructions = _read_count(count_file) if count_file is not None else None
    return QemuRun(
        exit_code=code,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out and fault is None,
        fault=fault,
        instructions=None if timed_out else instructions,
        wall_seconds=wall,
        command=command,
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _count_file(workdir: Path) -> Path:
    return workdir / f".insns-{uuid.uuid4().hex}.txt"


def run_cortex_m(
    elf: Path, board: Board, workdir: Path, timeout_s: float, count_instructions: bool = False
) -> QemuRun:
    """Boot ``elf`` on a fresh ``qemu-system-arm`` for ``board`` with semihosting.

    The process runs in ``workdir``, so the harness's ``run.cfg`` and data files are relative
    to it. QEMU 7.2 sends the program's stdout (newlib ``printf``) to its stdout and the fault
    report (semihosting SYS_WRITE0) to its stderr; both are searched for the fault marker.
    """
    qemu = require_tool("qemu-system-arm")
    command = [
        str(qemu),
        "-M",
        board.qemu_machine,
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf.resolve()),
    ]
    count_file = _count_file(workdir) if count_instructions else None
    if count_file is not None:
        command += _plugin_args(count_file.name)
    return _execute(command, workdir, timeout_s, count_file)


def run_aarch64(
    binary: Path, workdir: Path, timeout_s: float, count_instructions: bool = False
) -> QemuRun:
    """Run a static aarch64 Linux ``binary`` under ``qemu-aarch64`` (user mode) in ``workdir``."""
    qemu = require_tool("qemu-aarch64")
    command = [str(qemu)]
    count_file = _count_file(workdir) if count_instructions else None
    if count_file is not None:
        command += _plugin_args(count_file.name)
    command.append(str(binary.resolve()))
    return _execute(command, workdir, timeout_s, count_file)


def run_host(binary: Path, workdir: Path, timeout_s: float) -> QemuRun:
    """Run a host ``binary`` natively in ``workdir`` (no instruction count)."""
    return _execute([str(binary.resolve())], workdir, timeout_s, None)
