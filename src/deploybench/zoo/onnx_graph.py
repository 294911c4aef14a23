"""Helpers to write the zoo's ONNX graphs by hand, byte for byte reproducibly.

Writing graphs with ``onnx.helper`` (instead of ``torch.onnx.export`` or a converter) keeps
every byte under our control: fixed opset, IR version and producer, no timestamps, no
exporter version strings, and initializers in a fixed order. Rebuilding a model with the same
weights therefore gives the same file and the same sha256. ``onnx`` is imported lazily so
importing :mod:`deploybench.zoo` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnx

OPSET = 17
IR_VERSION = 8
PRODUCER = "deploybench-zoo"
# Symbolic batch dimension of every zoo model input and output.
BATCH_DIM = "N"


def float_tensor(name: str, dims: Sequence[int | str]) -> onnx.ValueInfoProto:
    """A float32 graph input or output with the given (possibly symbolic) dimensions."""
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def initializer(name: str, array: npt.ArrayLike) -> onnx.TensorProto:
    """A float32 weight tensor; every zoo weight is float32 whatever the trainer used."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)


def int64_initializer(name: str, values: Sequence[int]) -> onnx.TensorProto:
    """An int64 constant tensor, e.g. the target shape of a Reshape."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def serialize_model(
    *,
    name: str,
    builder_version: int,
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Sequence[onnx.TensorProto],
    doc: str,
) -> bytes:
    """Assemble, fully check and serialize a zoo model.

    Raises ``onnx.checker.ValidationError`` if the graph is invalid: that is a bug in the
    builder, not a user error, so it is not wrapped.
    """
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        list(nodes), name, list(inputs), list(outputs), initializer=list(initializers)
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        producer_version=str(builder_version),
        doc_string=doc,
    )
    helper.set_model_props(
        model,
        {"deploybench.zoo.name": name, "deploybench.zoo.builder_version": str(builder_version)},
    )
    # full_check also runs strict shape inference, which catches wrong weight shapes.
    onnx.checker.check_model(model, full_check=True)
    # No maps in ONNX protos, but ask for deterministic output anyway: it is the contract.
    data: bytes = model.SerializeToString(deterministic=True)
    return data
