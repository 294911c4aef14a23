"""Every toolchain passes the shipped contract suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.spec import Problem
from deploybench.testing.fakes import FakeToolchain
from deploybench.testing.toolchain_contract import ToolchainContract
from deploybench.toolchains.base import Toolchain
from deploybench.toolchains.onnxruntime import OnnxRuntimeToolchain


@pytest.fixture(scope="module")
def problem() -> ResolvedProblem:
    return resolve_problem(
        Problem.model_validate({"model": "zoo:digits-mlp", "dataset": "zoo:digits"})
    )


class TestOnnxRuntimeContract(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        return OnnxRuntimeToolchain()

    @pytest.fixture(
        params=[
            {"graph_optimization": "disabled"},
            {"graph_optimization": "all"},
            {"quantization": "dynamic-int8", "per_channel": True},
            {"quantization": "static-int8", "calibration_samples": 8},
        ],
        ids=["fp32-noopt", "fp32-all", "dynamic-int8", "static-int8"],
    )
    def config(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


class TestFakeToolchainContract(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        return FakeToolchain()

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {}


def test_deployed_size_counts_the_entry_and_its_companions_only(tmp_path: Path) -> None:
    from deploybench.toolchains.base import Deployable, DeployableFile

    sizes = {"model.xml": 10, "model.bin": 1000, "quantized.xml": 12, "quantized.bin": 900}
    sizes |= {"quantized.onnx": 50, "quantized.onnx.data": 4000, "config.json": 7}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)

    def deployable(entry: str) -> Deployable:
        files = [
            DeployableFile(path=n, sha256="0" * 64, size=s, role="x") for n, s in sizes.items()
        ]
        return Deployable(
            toolchain="t",
            kind="python-session",
            entry=entry,
            files=files,
            inputs=[],
            outputs=[],
            steps=[],
            tool_versions={},
            root=tmp_path,
        )

    assert deployable("quantized.xml").deployed_size_bytes == 12 + 900
    assert deployable("model.xml").deployed_size_bytes == 10 + 1000
    assert deployable("quantized.onnx").deployed_size_bytes == 50 + 4000
    assert deployable("config.json").deployed_size_bytes == 7
