"""Import TVM lazily and describe the host it compiles for.

TVM ships no type information, so its modules are handled as ``Any`` and imported through
:func:`importlib.import_module`: nothing here runs at import time of deploybench.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from deploybench.plugins.availability import distribution_version

DISTRIBUTION = "apache-tvm"
# What tvm.support.cc.get_cc() looks for: export_library links the model with one of these.
LINKERS = ("g++", "gcc", "clang++", "clang", "c++", "cc")


def tvm_module(name: str = "tvm") -> Any:
    """``tvm`` or one of its submodules (e.g. ``tvm.relax``)."""
    return importlib.import_module(name)


@contextlib.contextmanager
def torch_kept_out() -> Iterator[bool]:
    """Keep torch out of the process while TVM is imported; yields whether it did.

    ``tvm_ffi`` imports torch eagerly, only to patch its DLPack interop, which an inference
    session never uses. In the measurement worker that import costs about 2 s of load time and
    200 MB of resident memory that belong to torch, not to the deployed model. A ``None`` entry
    in ``sys.modules`` makes ``import torch`` raise ImportError, which TVM handles. When torch
    or TVM is already loaded, nothing changes.
    """
    if "torch" in sys.modules or "tvm" in sys.modules:
        yield False
        return
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        yield True
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


def find_linker() -> str | None:
    """The C/C++ compiler TVM links shared libraries with (``$CXX``, ``$CC`` or the first on
    PATH), without importing TVM."""
    for candidate in (os.environ.get("CXX"), os.environ.get("CC"), *LINKERS):
        if candidate and shutil.which(candidate):
            return candidate
    return None


def linker_version(linker: str) -> str:
    """First line of ``LINKER --version`` (for the build record)."""
    try:
        out = subprocess.run(
            [linker, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{linker} (version unknown: {exc})"
    lines = out.stdout.strip().splitlines()
    return lines[0] if lines else linker


def tvm_version() -> str:
    """Installed apache-tvm version, or 'not installed'."""
    return distribution_version(DISTRIBUTION) or "not installed"


def host_cpu() -> str:
    """The host CPU as LLVM names it (what ``-mcpu=native`` would pick)."""
    codegen = tvm_module("tvm.target.codegen")
    return str(codegen.llvm_get_system_cpu())


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask)."""
    return len(os.sched_getaffinity(0))


def llvm_target(mcpu: str, mattr: list[str], num_cores: int, opt_level: int) -> dict[str, Any]:
    """The dict TVM's ``Target`` takes (target strings with options are rejected)."""
    target: dict[str, Any] = {
        "kind": "llvm",
        "mcpu": mcpu,
        "num-cores": num_cores,
        "opt-level": opt_level,
    }
    if mattr:
        target["mattr"] = list(mattr)
    return target
