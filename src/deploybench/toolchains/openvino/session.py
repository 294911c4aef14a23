"""OpenVINO session used inside the measurement worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deploybench.plugins.availability import distribution_version
from deploybench.toolchains.base import Deployable, SessionOptions
from deploybench.toolchains.openvino.properties import (
    compile_properties,
    compiled_facts,
    precision_mismatch,
)


class OpenVinoSession:
    """A compiled model and one infer request, configured from the deployable.

    Opening it fails when the plugin compiled another precision than the one asked for (the
    CPU plugin silently falls back to f32 where bf16 or f16 kernels are missing, and defaults
    to bf16 where they exist): a benchmark must not measure something else than it says.
    """

    needs_synchronize = False  # InferRequest.infer is synchronous: run() returns finished outputs

    def __init__(self, deployable: Deployable, options: SessionOptions) -> None:
        import openvino as ov  # type: ignore[import-untyped]

        config = deployable.session_config
        self._precision = str(config["precision"])
        self._device = str(config.get("device", "CPU"))
        self._properties = compile_properties(config, options.threads)
        self._compiled = ov.Core().compile_model(
            str(deployable.entry_path), self._device, self._properties
        )
        self._facts = compiled_facts(self._compiled)
        mismatch = precision_mismatch(self._precision, self._facts)
        if mismatch:
            raise RuntimeError(f"{mismatch}; refusing to measure another precision")
        self._outputs = [self._port(spec.name) for spec in deployable.outputs]
        self._dtypes = {spec.name: np.dtype(spec.dtype) for spec in deployable.inputs}
        self._request = self._compiled.create_infer_request()
        # The buffer bound to each input of the request (bound on the first run).
        self._bound: list[np.ndarray | None] = [None] * len(self._compiled.inputs)
        self._version = distribution_version("openvino") or ov.__version__

    def _port(self, name: str) -> Any:
        for port in self._compiled.outputs:
            if name in port.get_names():
                return port
        known = sorted(n for port in self._compiled.outputs for n in port.get_names())
        raise RuntimeError(f"the compiled model has no output '{name}'; outputs: {known}")

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> list[tuple[int, np.ndarray]]:
        """``(input index, array)`` pairs: contiguous arrays of the declared dtypes, built
        before timing."""
        feed: list[tuple[int, np.ndarray]] = []
        for index, port in enumerate(self._compiled.inputs):
            name = next((n for n in port.get_names() if n in inputs), None)
            if name is None:
                raise RuntimeError(
                    f"no data for model input {sorted(port.get_names())}; got {sorted(inputs)}"
                )
            feed.append((index, np.ascontiguousarray(inputs[name], dtype=self._dtypes.get(name))))
        return feed

    def run(self, feed: list[tuple[int, np.ndarray]]) -> Sequence[np.ndarray]:
        """One synchronous inference; outputs copied out of the request's buffers (the next
        call overwrites them) in the order the problem declares them.

        Each input is copied into a buffer bound to the request once (rebound only when the
        batch shape changes), as an application feeding a camera or a queue would do: binding
        a different tensor on every call makes OpenVINO's own time per inference 2-3 µs
        longer (digits-mlp: 12.3-13.8 µs against 9.8-10.9 µs, in one pinned process)."""
        bound = self._bound
        for index, array in feed:
            buffer = bound[index]
            if buffer is None or buffer.shape != array.shape:
                buffer = self._bind(index, array)
            np.copyto(buffer, array)
        self._request.infer()
        return [self._request.get_tensor(port).data.copy() for port in self._outputs]

    def _bind(self, index: int, like: np.ndarray) -> np.ndarray:
        """A buffer shaped like ``like`` bound as input ``index`` of the request."""
        import openvino as ov

        buffer = np.empty_like(like)
        self._request.set_tensor(
            self._compiled.inputs[index], ov.Tensor(buffer, shared_memory=True)
        )
        self._bound[index] = buffer
        return buffer

    def last_runtime_latency_ns(self) -> int:
        """``InferRequest.latency`` of the last :meth:`run` (OpenVINO gives milliseconds):
        the time OpenVINO measured inside ``infer()``, the figure ``benchmark_app`` reports.
        It leaves out the Python around it (``set_tensor``, the call, the output copies)."""
        return round(float(self._request.latency) * 1e6)

    def synchronize(self) -> None:
        """Nothing to wait for: ``infer`` returns finished outputs."""

    def info(self) -> dict[str, Any]:
        """Precision, streams, threads and devices read back from the compiled model."""
        return {
            "runtime": "openvino",
            "version": self._version,
            "device": self._device,
            "precision": self._precision,
            **self._facts,
            "properties": dict(self._properties),
        }

    def close(self) -> None:
        """Drop the request and the compiled model."""
        del self._request
        del self._compiled


def open_session(deployable: Deployable, options: SessionOptions) -> OpenVinoSession:
    """Session factory named in OpenVINO deployables."""
    return OpenVinoSession(deployable, options)
