"""The open models: valid ONNX, expected quality on their datasets, reproducible bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from deploybench.hashing import sha256_file
from deploybench.zoo import ZooArtifact, build_dataset, build_model, get_model, list_models
from deploybench.zoo.datasets import digits_split
from deploybench.zoo.digits_cnn import train_digits_cnn

MODEL_NAMES = [m.name for m in list_models() if m.format == "onnx"]
OUTPUTS = {
    "digits-cnn": "logits",
    "digits-mlp": "logits",
    "diabetes-linear": "prediction",
    "resnet18-wd4-digits32": "logits",
}
# Models whose weights come from torch (and the versions recorded in the manifest).
TORCH_BUILT = {"digits-cnn", "resnet18-wd4-digits32"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ZooArtifact]]:
    """Every model built once, into the default cache of a throw-away DEPLOYBENCH_HOME."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEPLOYBENCH_HOME", str(home))
        yield {name: build_model(name) for name in MODEL_NAMES}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path / "home"))


def _run(artifact: ZooArtifact, inputs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    session = ort.InferenceSession(str(artifact.path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"input": inputs})
    return np.asarray(output)


def _dataset(name: str) -> dict[str, np.ndarray[Any, Any]]:
    with np.load(build_dataset(name).path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_is_a_reproducible_onnx_graph(built: dict[str, ZooArtifact], name: str) -> None:
    artifact = built[name]
    assert artifact.path.name == "model.onnx"
    assert artifact.path.parent.name == f"{name}-v{get_model(name).builder_version}"
    model = onnx.load(artifact.path)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.producer_name == "deploybench-zoo"
    assert all(
        t.data_type == onnx.TensorProto.FLOAT
        for t in model.graph.initializer
        if t.name != "image_shape"
    )
    (graph_input,) = model.graph.input
    assert graph_input.name == "input"
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "N"
    assert [o.name for o in model.graph.output] == [OUTPUTS[name]]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_manifest_records_hash_version_and_tools(built: dict[str, ZooArtifact], name: str) -> None:
    artifact = built[name]
    manifest = artifact.manifest
    assert manifest["sha256"] == artifact.sha256 == sha256_file(artifact.path)
    assert manifest["builder_version"] == get_model(name).builder_version
    assert manifest["default_dataset"] == get_model(name).default_dataset
    assert {"numpy", "onnx", "sklearn"} <= set(manifest["tools"])
    assert ("torch" in manifest["tools"]) == (name in TORCH_BUILT)


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_digits_classifiers_are_accurate(built: dict[str, ZooArtifact], name: str) -> None:
    data = _dataset("digits")
    logits = _run(built[name], data["input"])
    assert logits.shape == (360, 10) and logits.dtype == np.float32
    accuracy = float(np.mean(logits.argmax(axis=1) == data["labels"]))
    assert accuracy >= 0.95
    # The ONNX graph predicts what the trained framework model predicted at build time.
    assert accuracy == pytest.approx(built[name].manifest["test_accuracy"], abs=1 / 360)


def test_diabetes_linear_has_the_usual_r2(built: dict[str, ZooArtifact]) -> None:
    data = _dataset("diabetes")
    prediction = _run(built["diabetes-linear"], data["input"])
    assert prediction.shape == (89, 1) and prediction.dtype == np.float32
    targets = data["targets"]
    residual = np.sum((targets - prediction[:, 0]) ** 2)
    r2 = 1.0 - residual / np.sum((targets - targets.mean()) ** 2)
    assert 0.25 <= r2 <= 0.55
    assert r2 == pytest.approx(built["diabetes-linear"].manifest["test_r2"], abs=1e-4)


def test_models_accept_any_batch_size(built: dict[str, ZooArtifact]) -> None:
    x = digits_split().x_test[:3]
    assert _run(built["digits-cnn"], x).shape == (3, 10)
    assert _run(built["digits-mlp"], x[:1]).shape == (1, 10)


def test_cnn_onnx_graph_matches_the_torch_model(built: dict[str, ZooArtifact]) -> None:
    import torch

    x = digits_split().x_test
    torch.manual_seed(123)
    expected_random = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()

    # Training is deterministic, so this is the very network the builder exported.
    network = train_digits_cnn()

    # Training pins torch (seed, one thread, deterministic kernels) only while it runs.
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.rand(3), expected_random)

    with torch.no_grad():
        expected = network(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(built["digits-cnn"], x), expected, rtol=1e-4, atol=1e-4)


def test_models_rebuild_byte_identically_in_another_cache(
    built: dict[str, ZooArtifact], tmp_path: Path
) -> None:
    for name in MODEL_NAMES:
        rebuilt = build_model(name, tmp_path / "other-cache")
        assert rebuilt.path != built[name].path
        assert rebuilt.sha256 == built[name].sha256 == sha256_file(rebuilt.path)
        assert rebuilt.path.read_bytes() == built[name].path.read_bytes()


def test_torch_cnn_is_a_reproducible_state_dict_of_the_onnx_cnn_weights(
    built: dict[str, ZooArtifact], tmp_path: Path
) -> None:
    """digits-cnn-torch: a state dict of DigitsCnn holding the very weights of digits-cnn."""
    import torch
    from onnx import numpy_helper

    from deploybench.zoo.torch_models import DigitsCnn

    artifact = build_model("digits-cnn-torch", cache_dir=tmp_path / "a")
    again = build_model("digits-cnn-torch", cache_dir=tmp_path / "b")
    assert artifact.path.name == "model.pt"
    assert again.sha256 == artifact.sha256
    assert {"numpy", "sklearn", "torch"} <= set(artifact.manifest["tools"])
    state = torch.load(artifact.path, weights_only=True)
    model = DigitsCnn()
    model.load_state_dict(state, strict=True)
    weights = {
        t.name: numpy_helper.to_array(t)
        for t in onnx.load(built["digits-cnn"].path).graph.initializer
    }
    assert np.array_equal(state["1.weight"].numpy(), weights["conv1_w"])
    assert np.array_equal(state["7.weight"].numpy(), weights["dense_w"])


def test_resnet18_is_the_seeded_pytorchcv_network_with_varied_labels(
    built: dict[str, ZooArtifact],
) -> None:
    """Rebuilding the network in torch gives the ONNX file's logits, and those are not
    degenerate: random weights, but BatchNorm statistics spread the labels over the digits."""
    import torch

    from deploybench.zoo.pytorchcv_nets import random_network

    artifact = built["resnet18-wd4-digits32"]
    images = _dataset("digits32")["input"]
    logits = _run(artifact, images)
    assert logits.shape == (360, 10)
    network = random_network("resnet18-wd4")
    with torch.no_grad():
        expected = network(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    counts = np.bincount(logits.argmax(axis=1), minlength=10)
    assert counts.tolist() == artifact.manifest["label_counts"]
    assert np.count_nonzero(counts) >= 8 and counts.max() <= 0.5 * len(images)
    # Not constant per class either: samples differ in their logits.
    assert float(logits.std(axis=0).mean()) > 0.1
    ops = {node.op_type for node in onnx.load(artifact.path).graph.node}
    assert {"Conv", "Add", "MaxPool", "GlobalAveragePool", "Gemm"} <= ops
    assert "BatchNormalization" not in ops  # folded into the convolutions by the exporter


def test_resnet18_torch_is_a_reproducible_state_dict_of_the_same_network(
    built: dict[str, ZooArtifact], tmp_path: Path
) -> None:
    import torch

    from deploybench.zoo.torch_models import Resnet18Wd4Digits32

    artifact = build_model("resnet18-wd4-digits32-torch", cache_dir=tmp_path / "a")
    assert artifact.path.name == "model.pt"
    assert {"numpy", "pytorchcv", "sklearn", "torch"} <= set(artifact.manifest["tools"])
    model = Resnet18Wd4Digits32()
    model.load_state_dict(torch.load(artifact.path, weights_only=True), strict=True)
    model.eval()
    images = _dataset("digits32")["input"][:32]
    with torch.no_grad():
        logits = model(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(logits, _run(built["resnet18-wd4-digits32"], images), atol=1e-4)
