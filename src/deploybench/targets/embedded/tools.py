"""Locating the external tools (cross compilers, QEMU) with install hints when absent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from deploybench.targets.embedded.errors import ToolMissingError

APT_HINTS: dict[str, str] = {
    "arm-none-eabi-gcc": "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-size": "apt-get install binutils-arm-none-eabi",
    "aarch64-linux-gnu-gcc": "apt-get install gcc-aarch64-linux-gnu",
    "gcc": "apt-get install gcc",
    "qemu-system-arm": "apt-get install qemu-system-arm",
    "qemu-aarch64": "apt-get install qemu-user",
}


def require_tool(name: str) -> Path:
    """Absolute path of the executable ``name``; :class:`ToolMissingError` says how to get it."""
    found = shutil.which(name)
    if found is None:
        hint = APT_HINTS.get(name, f"install {name}")
        raise ToolMissingError(f"{name} is not installed (or not on PATH); run: {hint}")
    return Path(found)


def first_line_of(command: list[str]) -> str | None:
    """First line a ``--version`` style command prints, None when it cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else None
