"""The instruction-counting QEMU TCG plugin, compiled on first use into the data folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from deploybench.paths import data_home
from deploybench.targets.embedded.errors import CompileError
from deploybench.targets.embedded.tools import require_tool


def plugin_source() -> Path:
    """Path of ``insn_count.c`` (package data)."""
    return Path(str(resources.files("deploybench.targets.embedded") / "plugin" / "insn_count.c"))


def plugin_library() -> Path:
    """The built plugin ``.so``, cached under the data folder by the source's sha256.

    Built with the host ``gcc -shared -fPIC -O2``; a concurrent build by another process is
    harmless because the library is written to a temporary name and renamed into place.
    """
    source = plugin_source()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cache = data_home() / "cache" / "qemu-plugins"
    cache.mkdir(parents=True, exist_ok=True)
    library = cache / f"insn_count-{digest}.so"
    if library.is_file():
        return library
    compiler = require_tool("gcc")
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        built = Path(scratch) / library.name
        command = [str(compiler), "-shared", "-fPIC", "-O2", "-o", str(built), str(source)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise CompileError("building the QEMU plugin failed", command, done.stderr)
        os.replace(built, library)
    return library
