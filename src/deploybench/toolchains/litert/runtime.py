"""The LiteRT interpreter behind sessions and the INT8 evaluation: XNNPACK on or off,
threads, inputs and outputs in signature order, and batches split into invocations at the
fixed batch size of the conversion."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SIGNATURE = "serving_default"
_POSITION = re.compile(r"(\d+)$")

Feed = list[list[np.ndarray]]


def _position(name: str) -> int:
    """litert-torch names signature tensors args_0, args_1 ... and output_0, output_1 ..."""
    match = _POSITION.search(name)
    return int(match.group(1)) if match else 0


class LiteRtRunner:
    """One ``Interpreter`` for a ``.tflite`` converted by litert-torch.

    ``batch`` is the batch size the model was converted at: a batch of ``n`` samples runs as
    ``n / batch`` invocations, which :meth:`split` prepares. (Resizing the input instead is
    not attempted: litert-torch bakes the batch into reshapes, and such a model fails to
    prepare at another size, as the digits CNN does.)
    """

    def __init__(self, model_path: Path, *, xnnpack: bool, threads: int | None, batch: int) -> None:
        from ai_edge_litert.interpreter import (  # type: ignore[import-untyped]
            Interpreter,
            OpResolverType,
        )

        # AUTO applies the default delegate (XNNPACK); this resolver type skips it.
        resolver = (
            OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        self.xnnpack = xnnpack
        self.threads = threads
        self.batch = batch
        self._interpreter = Interpreter(
            model_path=str(model_path),
            num_threads=threads,
            experimental_op_resolver_type=resolver,
        )
        runner = self._interpreter.get_signature_runner(SIGNATURE)
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        # The runner holds views of the interpreter's tensors; allocate_tensors refuses to
        # run while any exists.
        del runner
        self._inputs = [inputs[k] for k in sorted(inputs, key=_position)]
        ordered = [outputs[k] for k in sorted(outputs, key=_position)]
        self._outputs = [int(d["index"]) for d in ordered]
        self.input_dtypes = [np.dtype(d["dtype"]) for d in self._inputs]
        self.output_dtypes = [np.dtype(d["dtype"]) for d in ordered]
        self._interpreter.allocate_tensors()

    @property
    def n_inputs(self) -> int:
        """Number of model inputs."""
        return len(self._inputs)

    def delegated_nodes(self) -> int:
        """Nodes of the execution plan handed to a delegate (XNNPACK): 0 when none ran."""
        # _get_ops_details is the interpreter's own listing of the execution plan; no public
        # call says whether the default delegate was applied.
        ops = self._interpreter._get_ops_details()
        return sum(1 for op in ops if op.get("op_name") == "DELEGATE")

    def split(self, arrays: Sequence[np.ndarray]) -> Feed:
        """Contiguous arrays of the model's dtypes, one list per invocation (done before
        timing); a batch that is no multiple of the converted batch is refused."""
        arrays = [
            np.ascontiguousarray(a, dtype=dtype)
            for a, dtype in zip(arrays, self.input_dtypes, strict=True)
        ]
        n = int(arrays[0].shape[0])
        if n % self.batch:
            raise ValueError(
                f"the model was converted at a fixed batch of {self.batch} and cannot take a "
                f"batch of {n}; use a multiple of {self.batch}, or set toolchain.config.batch"
            )
        return [[a[i : i + self.batch] for a in arrays] for i in range(0, n, self.batch)]

    def invoke(self, feed: Feed) -> list[np.ndarray]:
        """Run every invocation of ``feed``; outputs in signature order, one array each."""
        interpreter = self._interpreter
        results: list[list[np.ndarray]] = []
        for chunk in feed:
            for detail, array in zip(self._inputs, chunk, strict=True):
                interpreter.set_tensor(detail["index"], array)
            interpreter.invoke()
            results.append([interpreter.get_tensor(index) for index in self._outputs])
        if len(results) == 1:
            return results[0]
        return [np.concatenate(parts, axis=0) for parts in zip(*results, strict=True)]

    def close(self) -> None:
        """Drop the interpreter."""
        del self._interpreter


def run_all(runner: LiteRtRunner, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every whole batch of samples through the model (a trailing partial one is left out)."""
    n = int(arrays[0].shape[0])
    stop = n - n % runner.batch
    return runner.invoke(runner.split([a[:stop] for a in arrays]))
