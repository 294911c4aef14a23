"""The ``run.cfg`` file the harness reads, and the float32 files it exchanges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

RUN_CONFIG_NAME = "run.cfg"
DONE_MARKER = "DEPLOYBENCH-DONE"
ERROR_MARKER = "DEPLOYBENCH-ERROR"


def write_run_config(
    workdir: Path, inferences: int, samples: int, input_name: str, output_name: str | None
) -> Path:
    """Write ``run.cfg`` in ``workdir``; file names are relative to it (the harness's cwd).

    ``output_name`` None skips the functional pass (outputs are not written). Names must not
    contain white space: the harness reads one token per value.
    """
    if inferences < 0 or samples <= 0:
        raise ValueError(f"need inferences >= 0 and samples > 0, got {inferences}, {samples}")
    for name in (input_name, output_name or "-"):
        if not name or any(ch.isspace() for ch in name) or len(name) > 255:
            raise ValueError(f"harness file names need 1-255 characters, no spaces: {name!r}")
    text = (
        "# deploybench harness configuration\n"
        f"inferences {inferences}\n"
        f"samples {samples}\n"
        f"input {input_name}\n"
        f"output {output_name or '-'}\n"
    )
    path = workdir / RUN_CONFIG_NAME
    path.write_text(text)
    return path


def write_inputs(path: Path, samples: npt.ArrayLike) -> int:
    """Write samples as little-endian float32 back to back; returns the number of samples."""
    array = np.ascontiguousarray(samples, dtype="<f4")
    array.tofile(path)
    return int(array.shape[0]) if array.ndim > 0 else 1


def read_outputs(path: Path, output_size: int) -> npt.NDArray[np.float32]:
    """Read the harness's outputs as a ``(samples, output_size)`` float32 array."""
    flat = np.fromfile(path, dtype="<f4")
    if output_size <= 0 or flat.size % output_size:
        raise ValueError(f"{path} holds {flat.size} floats, not a multiple of {output_size}")
    return flat.reshape(-1, output_size).astype(np.float32)
