"""PyTorch session used inside the measurement worker."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deploybench.toolchains.base import Deployable, SessionOptions


class PyTorchSession:
    """The deployed model, loaded per mode, run under ``torch.inference_mode()``.

    ``compile`` mode compiles in :meth:`prepare`, the first time each input shape is seen
    (before timing); the seconds it took are reported by :meth:`info` as ``compile_seconds``.
    """

    needs_synchronize = False  # CPU execution is synchronous

    def __init__(self, deployable: Deployable, options: SessionOptions) -> None:
        import torch

        config = deployable.session_config
        self._mode = str(config["mode"])
        self._quantization = str(config.get("quantization", "none"))
        self._compile_mode = str(config.get("compile_mode", "default"))
        if options.threads:
            torch.set_num_threads(options.threads)
        self._torch = torch
        self._names = [spec.name for spec in deployable.inputs]
        self._dtypes = {spec.name: np.dtype(spec.dtype) for spec in deployable.inputs}
        self.compile_seconds: dict[str, float] = {}
        entry = str(deployable.entry_path)
        if self._mode == "torchscript":
            self._model: Any = torch.jit.load(  # type: ignore[no-untyped-call]
                entry, map_location="cpu"
            ).eval()
        elif self._mode == "export-aoti":
            self._model = torch._inductor.aoti_load_package(entry)
        elif self._mode in ("eager", "compile"):
            self._model = self._module(deployable)
            if self._mode == "compile":
                self._model = torch.compile(self._model, mode=self._compile_mode)
        else:
            raise RuntimeError(
                f"unknown mode {self._mode!r}; allowed: eager, torchscript, compile, export-aoti"
            )

    def _module(self, deployable: Deployable) -> Any:
        from deploybench.problems.torch_model import build_module, load_state_dict

        torch = self._torch
        config = deployable.session_config
        module_file, _, class_name = str(config["module"]).rpartition(":")
        spec = f"{deployable.root / module_file}:{class_name}"
        kwargs = dict(config.get("kwargs") or {})
        weights = load_state_dict(deployable.root / str(config["weights"]))
        model = build_module(spec, kwargs, weights)
        if self._quantization == "dynamic-int8":
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
            model.load_state_dict(
                torch.load(str(deployable.entry_path), map_location="cpu", weights_only=True)
            )
        return model.eval()

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
        """Tensors in forward() order; compiles (untimed) on the first call of each shape."""
        torch = self._torch
        feed = tuple(
            torch.from_numpy(np.ascontiguousarray(inputs[name], dtype=self._dtypes[name]))
            for name in self._names
        )
        if self._mode == "compile":
            key = ",".join(str(list(t.shape)) for t in feed)
            if key not in self.compile_seconds:
                start = time.perf_counter()
                with torch.inference_mode():
                    self._model(*feed)
                self.compile_seconds[key] = round(time.perf_counter() - start, 3)
        return feed

    def run(self, feed: tuple[Any, ...]) -> Sequence[np.ndarray]:
        """One forward pass; outputs as numpy arrays in declared order."""
        with self._torch.inference_mode():
            result = self._model(*feed)
        if isinstance(result, (tuple, list)):
            return [t.numpy() for t in result]
        return [result.numpy()]

    def synchronize(self) -> None:
        """Nothing to wait for on the CPU."""

    def info(self) -> dict[str, Any]:
        """torch version, mode, quantization, threads, and compile time for compile mode."""
        info: dict[str, Any] = {
            "runtime": "torch",
            "version": self._torch.__version__,
            "mode": self._mode,
            "quantization": self._quantization,
            "threads": self._torch.get_num_threads(),
        }
        if self._mode == "compile":
            info["compile_mode"] = self._compile_mode
            info["compile_seconds"] = dict(self.compile_seconds)
        return info

    def close(self) -> None:
        """Drop the model."""
        del self._model


def open_session(deployable: Deployable, options: SessionOptions) -> PyTorchSession:
    """Session factory named in PyTorch deployables."""
    return PyTorchSession(deployable, options)
