"""TVM Relax virtual-machine session used inside the measurement worker."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from deploybench.toolchains.base import Deployable, SessionOptions
from deploybench.toolchains.tvm.runtime import torch_kept_out, tvm_module, tvm_version, usable_cpus


class TvmSession:
    """The compiled shared library loaded with ``tvm.runtime.load_module`` and run by a
    ``relax.VirtualMachine`` on the CPU."""

    needs_synchronize = False  # the CPU VM returns finished tensors

    def __init__(self, deployable: Deployable, options: SessionOptions) -> None:
        config = deployable.session_config
        self._threads = options.threads or usable_cpus()
        # TVM's default is half the logical CPUs and it pins its threads to cores 0..n-1,
        # which would override the worker's CPU affinity: set both before its pool starts.
        os.environ.setdefault("TVM_BIND_THREADS", "0")
        os.environ["TVM_NUM_THREADS"] = str(self._threads)
        with torch_kept_out() as self._torch_kept_out:
            tvm = tvm_module("tvm")
            relax = tvm_module("tvm.relax")
        if int(tvm.runtime.num_threads()) != self._threads:
            # The pool already existed (TVM was used earlier in this process): resize it.
            tvm.get_global_func("runtime.config_threadpool")(1, self._threads)
        self._tensor = tvm.runtime.tensor
        self._device = tvm.cpu()
        self._library = tvm.runtime.load_module(str(deployable.entry_path))
        self._vm = relax.VirtualMachine(self._library, self._device)
        self._function = str(config.get("function", "main"))
        self._batch_size: int | None = config.get("batch_size")
        self._input_names = [spec.name for spec in deployable.inputs]
        self._target = config.get("target", {})
        self.run: Callable[[Any], Sequence[np.ndarray]] = _bind_run(
            self._vm[self._function], len(deployable.outputs)
        )

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
        """Copy the batch into TVM tensors, in the model's input order."""
        if self._batch_size is not None:
            for name in self._input_names:
                size = inputs[name].shape[0] if inputs[name].ndim else None
                if size != self._batch_size:
                    raise ValueError(
                        f"input '{name}' has batch {size} but the library was compiled for "
                        f"batch_size {self._batch_size}; set measurement.batch_size to "
                        f"{self._batch_size} or remove toolchain.config.batch_size"
                    )
        return tuple(
            self._tensor(np.ascontiguousarray(inputs[name]), self._device)
            for name in self._input_names
        )

    def synchronize(self) -> None:
        """Nothing to wait for on the CPU."""

    def info(self) -> dict[str, Any]:
        """Runtime version, threads, the compiled target and the function that runs."""
        tvm = tvm_module("tvm")
        return {
            "runtime": "tvm",
            "version": tvm_version(),
            "executor": "relax.VirtualMachine",
            "device": "cpu",
            "function": self._function,
            "threads": int(tvm.runtime.num_threads()),
            "bind_threads": os.environ.get("TVM_BIND_THREADS"),
            "target": self._target,
            "torch_kept_out": self._torch_kept_out,
        }

    def close(self) -> None:
        """Drop the virtual machine and the library."""
        del self.run
        del self._vm
        del self._library


def _bind_run(function: Any, n_outputs: int) -> Callable[[Any], Sequence[np.ndarray]]:
    """A run(feed) returning numpy outputs in the ONNX output order."""
    if n_outputs == 1:

        def run_single(feed: tuple[Any, ...]) -> list[np.ndarray]:
            return [function(*feed).numpy()]

        return run_single

    def run_tuple(feed: tuple[Any, ...]) -> list[np.ndarray]:
        return [item.numpy() for item in function(*feed)]

    return run_tuple


def open_session(deployable: Deployable, options: SessionOptions) -> TvmSession:
    """Session factory named in TVM deployables."""
    return TvmSession(deployable, options)
