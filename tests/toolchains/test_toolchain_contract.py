"""Every toolchain passes the shipped contract suite."""

from __future__ import annotations

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
