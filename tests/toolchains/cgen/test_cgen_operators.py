"""Each operator the generator supports, as a tiny ONNX graph, against ONNX Runtime (fp32)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploybench.toolchains.cgen.codegen import (
    SUPPORTED_OPERATORS,
    CodegenError,
    check_model,
    generate_c,
)

RNG = np.random.default_rng(0)
FP32_TOLERANCE = 1e-4


def _model(
    nodes: list[Any], input_shape: list[int], inits: dict[str, np.ndarray], opset: int = 17
) -> Any:
    graph = helper.make_graph(
        nodes,
        "op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _weights(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _ort(model: Any, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    # One sample at a time: some graphs (Reshape to a constant shape) only accept batch 1.
    return np.concatenate([session.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])


CASES: dict[str, tuple[list[Any], list[int], dict[str, np.ndarray]]] = {
    "conv-groups-strides-pads": (
        [
            helper.make_node(
                "Conv",
                ["x", "w", "b"],
                ["y"],
                kernel_shape=[3, 3],
                pads=[1, 0, 2, 1],
                strides=[2, 1],
                group=2,
            )
        ],
        [1, 4, 9, 7],
        {"w": _weights(6, 2, 3, 3), "b": _weights(6)},
    ),
    "conv-depthwise-same-upper-no-bias": (
        [
            helper.make_node(
                "Conv",
                ["x", "w"],
                ["y"],
                kernel_shape=[3, 3],
                auto_pad="SAME_UPPER",
                strides=[2, 2],
                group=3,
            )
        ],
        [1, 3, 8, 8],
        {"w": _weights(3, 1, 3, 3)},
    ),
    "maxpool-padded": (
        [
            helper.make_node(
                "MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
            )
        ],
        [1, 2, 7, 7],
        {},
    ),
    "avgpool-exclude-pad": (
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
        [1, 2, 5, 6],
        {},
    ),
    "avgpool-include-pad": (
        [
            helper.make_node(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=[2, 3],
                pads=[1, 1, 0, 1],
                strides=[2, 2],
                count_include_pad=1,
            )
        ],
        [1, 2, 6, 6],
        {},
    ),
    "global-avgpool-flatten-gemm-trans": (
        [
            helper.make_node("GlobalAveragePool", ["x"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("Gemm", ["f", "w", "c"], ["y"], transB=1, alpha=0.5, beta=2.0),
        ],
        [1, 5, 4, 4],
        {"w": _weights(3, 5), "c": _weights(1, 3)},
    ),
    "gemm-transa-no-bias": (
        [
            helper.make_node("Reshape", ["x", "s"], ["r"]),
            helper.make_node("Gemm", ["r", "w"], ["y"], transA=1),
        ],
        [1, 6],
        {"w": _weights(6, 4), "s": np.array([6, 1], dtype=np.int64)},
    ),
    "matmul-softmax": (
        [
            helper.make_node("MatMul", ["x", "w"], ["m"]),
            helper.make_node("Softmax", ["m"], ["y"], axis=-1),
        ],
        [1, 8],
        {"w": _weights(8, 5)},
    ),
    "bn-not-foldable-sigmoid-tanh": (
        [
            helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["n"]),
            helper.make_node("Sigmoid", ["n"], ["s"]),
            helper.make_node("Tanh", ["n"], ["t"]),
            helper.make_node("Add", ["s", "t"], ["y"]),
        ],
        [1, 3, 4, 5],
        {"g": _weights(3), "b": _weights(3), "m": _weights(3), "v": np.abs(_weights(3)) + 0.5},
    ),
    "broadcast-mul-add-sub-div": (
        [
            helper.make_node("Mul", ["x", "per_channel"], ["a"]),
            helper.make_node("Add", ["a", "scalar"], ["b"]),
            helper.make_node("Sub", ["b", "x"], ["c"]),
            helper.make_node("Div", ["c", "row"], ["y"]),
        ],
        [1, 3, 4, 5],
        {
            "per_channel": _weights(3, 1, 1),
            "scalar": np.array(0.5, np.float32),
            "row": np.abs(_weights(5)) + 1.0,
        },
    ),
    "clip-inputs-and-relu": (
        [
            helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        [1, 10],
        {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)},
    ),
    "reshape-minus-one-and-zero-identity": (
        [
            helper.make_node("Reshape", ["x", "s"], ["r"]),
            helper.make_node("Identity", ["r"], ["y"]),
        ],
        [1, 2, 3, 4],
        {"s": np.array([0, -1], dtype=np.int64)},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_matches_onnxruntime(case: str, build_c: Any) -> None:
    nodes, shape, inits = CASES[case]
    model = _model(nodes, shape, inits)
    generated, host = build_c(model)
    x = RNG.standard_normal((3, *shape[1:])).astype(np.float32)
    expected = _ort(model, x)
    actual = host.run(x)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=FP32_TOLERANCE, atol=FP32_TOLERANCE)
    assert generated.precision == "fp32"


def test_clip_attributes_in_old_opset(build_c: Any) -> None:
    model = _model([helper.make_node("Clip", ["x"], ["y"], min=-0.25, max=0.5)], [1, 7], {}, 10)
    _, host = build_c(model)
    x = RNG.standard_normal((4, 7)).astype(np.float32)
    np.testing.assert_allclose(host.run(x), np.clip(x, -0.25, 0.5))


def test_batch_norm_folds_into_conv_and_relu_fuses(build_c: Any) -> None:
    inits = {
        "w": _weights(4, 2, 3, 3),
        "g": _weights(4),
        "b": _weights(4),
        "m": _weights(4),
        "v": np.abs(_weights(4)) + 0.5,
    }
    model = _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], name="conv1"),
            helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["n"], name="bn1"),
            helper.make_node("Relu", ["n"], ["y"], name="relu1"),
        ],
        [1, 2, 6, 6],
        inits,
    )
    generated, host = build_c(model)
    assert "BatchNormalization 'bn1' into Conv 'conv1'" in generated.folded
    assert generated.operators == {"Conv": 1}
    x = RNG.standard_normal((2, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(host.run(x), _ort(model, x), rtol=1e-4, atol=1e-4)


def test_batch_norm_folds_into_gemm(build_c: Any) -> None:
    inits = {
        "w": _weights(6, 4),
        "c": _weights(4),
        "g": _weights(4),
        "b": _weights(4),
        "m": _weights(4),
        "v": np.abs(_weights(4)) + 0.5,
    }
    model = _model(
        [
            helper.make_node("Gemm", ["x", "w", "c"], ["d"], name="fc", alpha=2.0),
            helper.make_node("BatchNormalization", ["d", "g", "b", "m", "v"], ["y"], name="bn"),
        ],
        [1, 6],
        inits,
    )
    generated, host = build_c(model)
    assert generated.folded == ["BatchNormalization 'bn' into Gemm 'fc'"]
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(host.run(x), _ort(model, x), rtol=1e-4, atol=1e-4)


def test_check_model_names_unsupported_operators() -> None:
    model = _model(
        [
            helper.make_node("Erf", ["x"], ["e"], name="erf_1"),
            helper.make_node(
                "Conv", ["e", "w"], ["y"], kernel_shape=[3, 3], dilations=[2, 2], name="dilated"
            ),
        ],
        [1, 1, 8, 8],
        {"w": _weights(1, 1, 3, 3)},
    )
    issues = check_model(model)
    rendered = [issue.render() for issue in issues]
    assert any("operator Erf (node 'erf_1') is not supported by cgen" in r for r in rendered)
    assert any("Conv" in r and "'dilated'" in r and "dilations" in r for r in rendered)
    assert "supported: " + ", ".join(SUPPORTED_OPERATORS) in rendered[0]
    with pytest.raises(CodegenError, match="erf_1"):
        generate_c(model, _tmp_dir())


def test_check_model_rejects_two_inputs_and_non_float_io() -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.INT32, [1, 3]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 3])],
    )
    reasons = " ".join(issue.reason for issue in check_model(helper.make_model(graph)))
    assert "exactly 1 input" in reasons
    assert "float32" in reasons


def test_arena_reuses_memory_along_a_chain(build_c: Any) -> None:
    convs = 5
    nodes = [
        helper.make_node("Conv", [f"t{i}", f"w{i}"], [f"t{i + 1}"], kernel_shape=[1, 1])
        for i in range(convs)
    ]
    nodes[0].input[0] = "x"
    nodes[-1].output[0] = "y"
    inits = {f"w{i}": _weights(4, 4, 1, 1) for i in range(convs)}
    model = _model(nodes, [1, 4, 8, 8], inits)
    generated, host = build_c(model)
    tensor_bytes = 4 * 8 * 8 * 4
    # Intermediates t1..t4 would take 4 buffers; two live at a time (y is the caller's).
    assert generated.arena_bytes < (convs - 1) * tensor_bytes
    assert generated.arena_bytes == 2 * tensor_bytes
    x = RNG.standard_normal((2, 4, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(host.run(x), _ort(model, x), rtol=1e-4, atol=1e-4)


def test_elementwise_chain_runs_in_place_in_the_output(build_c: Any) -> None:
    nodes = [
        helper.make_node("Relu" if i % 2 else "Sigmoid", [f"t{i}"], [f"t{i + 1}"]) for i in range(5)
    ]
    nodes[0].input[0] = "x"
    nodes[-1].output[0] = "y"
    model = _model(nodes, [1, 256], {})
    generated, host = build_c(model)
    assert generated.arena_bytes == 0
    x = RNG.standard_normal((2, 256)).astype(np.float32)
    np.testing.assert_allclose(host.run(x), _ort(model, x), rtol=1e-5, atol=1e-6)


def test_weights_bytes_counts_every_const_array_and_header_api(build_c: Any) -> None:
    inits = {"w": _weights(4, 2, 3, 3), "b": _weights(4), "w2": _weights(64, 10)}
    model = _model(
        [
            helper.make_node(
                "Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Flatten", ["c"], ["f"]),
            helper.make_node("MatMul", ["f", "w2"], ["y"]),
        ],
        [1, 2, 4, 4],
        inits,
    )
    generated, _ = build_c(model, prefix="net")
    assert generated.weights_bytes == sum(v.nbytes for v in inits.values())
    assert generated.input_shape == (1, 2, 4, 4)
    assert generated.output_shape == (1, 10)
    header = generated.header.read_text()
    assert "#define NET_INPUT_SIZE 32" in header
    assert "#define NET_OUTPUT_SIZE 10" in header
    assert f"#define NET_ARENA_BYTES {generated.arena_bytes}" in header
    assert "int net_run(const float *input, float *output);" in header
    source = generated.source.read_text()
    assert "malloc" not in source
    includes = {line for line in source.splitlines() if line.startswith("#include")}
    assert includes == {
        "#include <math.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "#include <string.h>",
        '#include "model.h"',
    }


def _tmp_dir() -> Any:
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="cgen-test-"))


def test_onnx_is_importable() -> None:
    assert onnx.__version__


def test_check_model_rejects_dynamic_spatial_dimensions() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    issues = check_model(helper.make_model(graph))
    assert any(issue.node == "relu" and "static" in issue.reason for issue in issues)


def test_missing_gcc_says_how_to_install(
    build_c: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from deploybench.toolchains.cgen.codegen import host

    generated, _ = build_c(_model([helper.make_node("Relu", ["x"], ["y"])], [1, 4], {}))
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(host.HostBuildError, match=r"apt-get install gcc"):
        host.compile_host_library(generated, tmp_path / "nogcc")


def test_host_model_rejects_wrong_sample_size(build_c: Any) -> None:
    _, model = build_c(_model([helper.make_node("Relu", ["x"], ["y"])], [1, 4], {}))
    with pytest.raises(ValueError, match="4 values"):
        model.run(np.zeros((2, 5), np.float32))
