"""Impossible experiments are refused at submit with the toolchain's reasons (REQ-00024/25):
the server runs the toolchain's checks on the uploaded model against the registered targets
the experiment may be placed on, and queues nothing when one definition cannot run."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from deploybench import zoo
from deploybench.targets.local import LocalCpuTarget

if TYPE_CHECKING:
    from conftest import Lab, LabFactory

API = "/api/v1"


def _fancy_model() -> bytes:
    """Relu(FancyOp(x)): an operator from a custom domain no runtime knows."""
    graph = helper.make_graph(
        [
            helper.make_node("FancyOp", ["x"], ["h"], domain="com.example"),
            helper.make_node("Relu", ["h"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def _dataset() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    return buffer.getvalue()


@pytest.fixture
def checking_lab(lab_factory: LabFactory) -> Lab:
    lab = lab_factory(check_compatibility=True, max_upload_bytes=1024**2)
    agent = lab.add_user("agent", "compat-agent")
    info = LocalCpuTarget().describe().model_dump(mode="json")
    answer = lab.client.post(
        f"{API}/agents/register",
        json={"name": "compat-agent", "version": "test", "targets": [info]},
        headers=agent.headers,
    )
    assert answer.status_code == 200, answer.text
    return lab


def _definition(
    lab: Lab, model: bytes, dataset: bytes, toolchain: str, **extra: Any
) -> dict[str, Any]:
    return {
        "name": f"compat-{toolchain}",
        "problem": {
            "model": {"path": "model.onnx", "sha256": lab.upload(model)},
            "dataset": {"path": "data.npz", "sha256": lab.upload(dataset)},
            "task": "classification",
        },
        "toolchain": {"name": toolchain, **extra},
        "target": {"name": "local"},
    }


def _jobs(lab: Lab) -> list[Any]:
    answer = lab.client.get(f"{API}/jobs", headers=lab.admin.headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


@pytest.mark.parametrize("toolchain", ["onnxruntime", "tvm"])
def test_an_operator_the_toolchain_lacks_is_refused_at_submit_and_named(
    checking_lab: Lab, toolchain: str
) -> None:
    user = checking_lab.add_user()
    good = zoo.build_model("digits-mlp").path.read_bytes()
    data = zoo.build_dataset("digits").path.read_bytes()
    definitions = [
        {**_definition(checking_lab, good, data, toolchain), "name": "fine"},
        _definition(checking_lab, _fancy_model(), _dataset(), toolchain),
    ]
    answer = checking_lab.client.post(
        f"{API}/experiments", json={"experiments": definitions}, headers=user.headers
    )
    assert answer.status_code == 400, answer.text
    detail = " ".join(answer.json()["detail"])
    assert "experiment [1]" in detail and "compat-agent/local" in detail
    assert "FancyOp" in detail
    assert "nothing was queued" in detail
    # All or nothing: the valid first definition was not queued either.
    assert _jobs(checking_lab) == []


def test_a_possible_experiment_is_queued(checking_lab: Lab) -> None:
    user = checking_lab.add_user()
    good = zoo.build_model("digits-mlp").path.read_bytes()
    data = zoo.build_dataset("digits").path.read_bytes()
    _, ids = checking_lab.submit(user, _definition(checking_lab, good, data, "onnxruntime"))
    assert len(ids) == 1 and checking_lab.job(ids[0])["state"] == "queued"


def test_a_corrupt_model_is_refused_at_submit(checking_lab: Lab) -> None:
    user = checking_lab.add_user()
    definition = _definition(checking_lab, b"not an onnx file", _dataset(), "onnxruntime")
    answer = checking_lab.client.post(
        f"{API}/experiments", json={"experiments": [definition]}, headers=user.headers
    )
    assert answer.status_code == 400, answer.text
    assert "model" in " ".join(answer.json()["detail"]).lower()
    assert _jobs(checking_lab) == []


def test_without_a_registered_target_the_job_waits_unchecked(lab_factory: LabFactory) -> None:
    lab = lab_factory(check_compatibility=True, max_upload_bytes=1024**2)
    user = lab.add_user()
    definition = _definition(lab, _fancy_model(), _dataset(), "onnxruntime")
    _, ids = lab.submit(user, definition)
    assert lab.job(ids[0])["state"] == "queued"


def _wide_model(outputs: int) -> bytes:
    """One Gemm 64 -> ``outputs``: 256 * outputs bytes of fp32 weights."""
    weight = helper.make_tensor(
        "w", TensorProto.FLOAT, [64, outputs], np.full(64 * outputs, 0.01, np.float32)
    )
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "w"], ["output"], name="fc")],
        "wide",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", outputs])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def board_lab(lab_factory: LabFactory) -> Lab:
    """A lab whose agent registered the Cortex-M target (its default board, mps2-an385)."""
    from deploybench.targets.cortex_m import QemuCortexMTarget

    lab = lab_factory(check_compatibility=True, max_upload_bytes=1024**2)
    agent = lab.add_user("agent", "board-agent")
    info = QemuCortexMTarget().describe().model_dump(mode="json")
    answer = lab.client.post(
        f"{API}/agents/register",
        json={"name": "board-agent", "version": "test", "targets": [info]},
        headers=agent.headers,
    )
    assert answer.status_code == 200, answer.text
    return lab


def _board_definition(lab: Lab, board: str) -> dict[str, Any]:
    data = zoo.build_dataset("digits").path.read_bytes()
    definition = _definition(lab, _wide_model(1100), data, "cgen")
    return {**definition, "target": {"name": "qemu-cortex-m", "config": {"board": board}}}


def test_the_board_an_experiment_asks_for_is_the_one_checked(board_lab: Lab) -> None:
    """281,600 bytes of weights: they fit the registered default board (4 MiB) but not the
    lm3s6965evb (256 KiB) the experiment names, so the submit is refused with the numbers."""
    user = board_lab.add_user()
    answer = board_lab.client.post(
        f"{API}/experiments",
        json={"experiments": [_board_definition(board_lab, "lm3s6965evb")]},
        headers=user.headers,
    )
    assert answer.status_code == 400, answer.text
    detail = " ".join(answer.json()["detail"])
    assert "does-not-fit" in detail and "lm3s6965evb" in detail and "262144" in detail
    _, ids = board_lab.submit(user, _board_definition(board_lab, "mps2-an385"))
    assert board_lab.job(ids[0])["state"] == "queued"


def test_an_unknown_board_is_refused_at_submit(board_lab: Lab) -> None:
    user = board_lab.add_user()
    answer = board_lab.client.post(
        f"{API}/experiments",
        json={"experiments": [_board_definition(board_lab, "esp32")]},
        headers=user.headers,
    )
    assert answer.status_code == 400, answer.text
    detail = " ".join(answer.json()["detail"])
    assert "esp32" in detail and "mps2-an386" in detail
