"""torch → .tflite in litert-torch's own environment: the requirement set, and the
subprocess that runs :mod:`deploybench.toolchains.litert.convert` there."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploybench.hashing import sha256_file
from deploybench.paths import data_home
from deploybench.toolchains.envs import ToolchainEnvironment, ensure_environment

LITERT_TORCH_VERSION = "0.10.0"
LITERT_VERSION = "2.3.0"
TORCH_VERSION = "2.13.0"
# torch is pinned too: litert-torch accepts >=2.4,<2.15, and any other release than the one
# on this machine's wheel cache downloads a multi-GB CUDA build. The interpreter is pinned to
# the main environment's, so the converter's sanity check runs the same LiteRT.
CONVERTER_REQUIREMENTS = [
    f"litert-torch=={LITERT_TORCH_VERSION}",
    f"torch=={TORCH_VERSION}",
    f"ai-edge-litert=={LITERT_VERSION}",
]
SCRIPT = Path(__file__).with_name("convert.py")
# What a cached conversion holds: the model and the converter's JSON result.
CACHED_FILES = ("model.tflite", "conversion.json")
# A converter run past this is stuck (a small model converts in about 15 s here).
TIMEOUT_S = 900

Log = Callable[[str], None]


def converter_environment(log: Log | None = None) -> ToolchainEnvironment:
    """The litert-torch environment, built on first use. It shares the main environment's
    packages where they satisfy litert-torch's pins (torch 2.13.0 above all), which keeps it
    near 1 GB and 45 s instead of 2 GB and two minutes; its own older pydantic and
    typing-extensions shadow the main ones inside it only."""
    return ensure_environment(CONVERTER_REQUIREMENTS, toolchain="litert", log=log, share_main=True)


def run_converter(
    environment: ToolchainEnvironment, arguments: list[str], result: Path, log: Log
) -> dict[str, Any]:
    """Run one command of ``convert.py`` with the environment's interpreter; its output goes
    to ``log``; returns the JSON it wrote to ``result``."""
    # -P: do not put this package's folder first on sys.path (its module names would shadow
    # top-level ones); the script needs nothing from it.
    argv = [str(environment.python), "-P", str(SCRIPT), *arguments, "--result", str(result)]
    done = subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=TIMEOUT_S,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.strip():
            log(line.rstrip())
    if done.returncode != 0:
        tail = [line for line in done.stdout.splitlines() if line.strip()][-1:]
        raise RuntimeError(
            f"{SCRIPT.name} {arguments[0]} exited with {done.returncode}: "
            f"{tail[0] if tail else 'no output'}"
        )
    data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    return data


def conversion_key(
    weights: Path, module: Path, class_name: str, kwargs: dict[str, Any], inputs: Any, batch: int
) -> str:
    """sha256 of everything a conversion depends on: the state dict and module file bytes,
    the class, its kwargs, the declared inputs, the batch size and the converter
    environment's requirement set."""
    payload = {
        "weights": sha256_file(weights),
        "module": sha256_file(module),
        "class": class_name,
        "kwargs": kwargs,
        "inputs": inputs,
        "batch": batch,
        "converter": CONVERTER_REQUIREMENTS,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def conversion_cache() -> Path:
    """Folder of finished conversions, one sub-folder per :func:`conversion_key`."""
    return data_home() / "cache" / "litert-conversions"


def cached_conversion(key: str) -> Path | None:
    """The folder holding a finished conversion for ``key``, or None."""
    folder = conversion_cache() / key
    complete = all((folder / name).is_file() for name in CACHED_FILES)
    return folder if complete else None


def store_conversion(key: str, files: list[Path]) -> None:
    """Keep ``files`` for later builds of the same model; written to a temporary folder and
    renamed into place, so readers never see half a conversion."""
    root = conversion_cache()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=root))
    for path in files:
        shutil.copyfile(path, staging / path.name)
    try:
        os.rename(staging, root / key)
    except OSError:  # another build stored the same conversion first
        shutil.rmtree(staging, ignore_errors=True)
