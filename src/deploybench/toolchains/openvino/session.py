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
        self._version = distribution_version("openvino") or ov.__version__

    def _port(self, name: str) -> Any:
        for port in self._compiled.outputs:
            if name in port.get_names():
                return port
        known = sorted(n for port in self._compiled.outputs for n in port.get_names())
        raise RuntimeError(f"the compiled model has no output '{name}'; outputs: {known}")

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Contiguous arrays of the declared dtypes, so inference reads them without a copy."""
        return {
            name: np.ascontiguousarray(array, dtype=self._dtypes.get(name, array.dtype))
            for name, array in inputs.items()
        }

    def run(self, feed: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        """One synchronous inference; outputs in the order the problem declares them."""
        result = self._request.infer(feed, share_inputs=True)
        return [result[port] for port in self._outputs]

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
