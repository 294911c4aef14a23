"""Build generated C for the host (gcc -shared) and run it from Python through ctypes."""

from __future__ import annotations

import ctypes
import hashlib
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np

from deploybench.toolchains.cgen.codegen.generate import GeneratedModel

_WARNINGS = ("-std=c99", "-Wall", "-Wextra")


class HostBuildError(RuntimeError):
    """gcc is missing or rejected the generated code (the message carries its output)."""


def compile_host_library(generated: GeneratedModel, out_dir: Path, opt_level: str = "-O2") -> Path:
    """Compile ``generated`` into ``out_dir/libmodel-<hash>.so`` with gcc; return its path."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise HostBuildError("gcc was not found on PATH; install gcc (apt-get install gcc)")
    out_dir.mkdir(parents=True, exist_ok=True)
    # dlopen caches by path, so a rebuilt library must get a new name to be loaded again.
    digest = hashlib.sha256(generated.source.read_bytes() + opt_level.encode()).hexdigest()
    library = out_dir / f"libmodel-{digest[:12]}.so"
    command = [
        gcc,
        *_WARNINGS,
        opt_level,
        "-shared",
        "-fPIC",
        "-I",
        str(generated.header.parent),
        str(generated.source),
        *(str(path) for path in generated.support_files if path.suffix == ".c"),
        "-o",
        str(library),
        "-lm",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HostBuildError(
            f"gcc failed (exit {result.returncode}) on {generated.source}:\n{result.stderr.strip()}"
        )
    return library


class HostModel:
    """A compiled model loaded with ctypes; ``run`` loops a batch through ``<prefix>_run``."""

    def __init__(
        self,
        library: Path,
        generated_or_input_shape: GeneratedModel | tuple[int, ...],
        output_shape: tuple[int, ...] | None = None,
        prefix: str | None = None,
    ) -> None:
        """Load ``library``. Pass the ``GeneratedModel`` (shapes and prefix come from it), or
        the input shape, output shape and prefix (``"dbm"`` by default) explicitly."""
        if isinstance(generated_or_input_shape, GeneratedModel):
            generated = generated_or_input_shape
            self.input_shape = tuple(generated.input_shape)
            self.output_shape = tuple(output_shape or generated.output_shape)
            self.prefix = prefix or generated.prefix
        else:
            if output_shape is None:
                raise ValueError("HostModel needs output_shape when given an input shape")
            self.input_shape = tuple(generated_or_input_shape)
            self.output_shape = tuple(output_shape)
            self.prefix = prefix or "dbm"
        self._input_size = math.prod(self.input_shape)
        self._output_size = math.prod(self.output_shape)
        self._library = ctypes.CDLL(str(library))
        self._run = getattr(self._library, f"{self.prefix}_run")
        pointer = ctypes.POINTER(ctypes.c_float)
        self._run.argtypes = [pointer, pointer]
        self._run.restype = ctypes.c_int

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run every sample of ``batch`` (float32, shape (N, ...)); returns (N, *output[1:])."""
        samples = np.ascontiguousarray(batch, dtype=np.float32).reshape(len(batch), -1)
        if samples.shape[1] != self._input_size:
            raise ValueError(
                f"each sample must have {self._input_size} values "
                f"(input shape {list(self.input_shape)}), got {samples.shape[1]}"
            )
        outputs = np.empty((len(samples), self._output_size), dtype=np.float32)
        pointer = ctypes.POINTER(ctypes.c_float)
        for index, sample in enumerate(samples):
            out = outputs[index]
            status = self._run(sample.ctypes.data_as(pointer), out.ctypes.data_as(pointer))
            if status != 0:
                raise RuntimeError(f"the generated model returned {status} for sample {index}")
        return outputs.reshape((len(samples), *self.output_shape[1:]))
