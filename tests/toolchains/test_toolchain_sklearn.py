"""The scikit-learn reference toolchain, and tree ensembles turned into C through emlearn."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.problems.sklearn_model import load_sklearn_model
from deploybench.runner.preparation import reference_toolchain
from deploybench.spec import Problem
from deploybench.targets.local import LocalCpuTarget
from deploybench.testing.toolchain_contract import ToolchainContract
from deploybench.toolchains.base import Toolchain
from deploybench.toolchains.cgen.codegen.generate import GeneratedModel
from deploybench.toolchains.cgen.codegen.host import HostModel, compile_host_library
from deploybench.toolchains.cgen.codegen.trees import generate_trees_c
from deploybench.toolchains.sklearn import SklearnToolchain

# Documented in the guide: 8-bit leaf proportions keep probabilities within ~0.004.
MAX_PROBABILITY_ERROR = 0.005
MIN_LABEL_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def problem() -> ResolvedProblem:
    return resolve_problem(
        Problem.model_validate({"model": "zoo:digits-forest", "dataset": "zoo:digits"})
    )


class TestSklearnContract(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        return SklearnToolchain()

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {}


def test_sklearn_models_are_their_own_reference_whoever_deploys_them() -> None:
    from deploybench.testing.fakes import FakeToolchain

    assert isinstance(reference_toolchain("sklearn", FakeToolchain()), SklearnToolchain)


def test_check_refuses_other_formats(problem: ResolvedProblem) -> None:
    onnx_problem = problem.model_copy(update={"model_format": "onnx"})
    toolchain = SklearnToolchain()
    findings = toolchain.check(
        onnx_problem, LocalCpuTarget().describe(), toolchain.reference_config()
    )
    assert [(f.severity, f.code) for f in findings] == [("error", "unsupported-format")]


@pytest.fixture(scope="module")
def generated(problem: ResolvedProblem, tmp_path_factory: pytest.TempPathFactory) -> GeneratedModel:
    return generate_trees_c(problem.model_path, tmp_path_factory.mktemp("trees"))


def test_trees_generate_the_cgen_api_without_support_files(generated: GeneratedModel) -> None:
    assert generated.input_shape == (1, 64) and generated.output_shape == (1, 10)
    assert (generated.input_name, generated.output_name) == ("input", "probabilities")
    assert generated.operators == {"TreeEnsembleClassifier": 8}
    assert generated.precision == "fp32" and generated.arena_bytes == 0
    assert generated.support_files == []
    header = generated.header.read_text()
    assert "#define DBM_INPUT_SIZE 64" in header and "#define DBM_OUTPUT_SIZE 10" in header
    assert "int dbm_run(const float *input, float *output);" in header
    source = generated.source.read_text()
    assert "malloc" not in source and "eml_" not in source  # no emlearn header needed
    # weights: 6 bytes per decision node + 10 bytes per distinct leaf, below the whole forest's
    # node count times the bytes of emlearn's own table node.
    assert 0 < generated.weights_bytes < 1740 * 8


def test_trees_match_predict_proba_on_the_host(
    problem: ResolvedProblem, generated: GeneratedModel, tmp_path: Path
) -> None:
    library = compile_host_library(generated, tmp_path)
    inputs = problem.load_inputs()["input"]
    outputs = HostModel(library, generated).run(inputs)
    forest = load_sklearn_model(problem.model_path)
    expected = forest.predict_proba(inputs)
    assert outputs.shape == expected.shape == (360, 10)
    assert float(np.abs(outputs - expected).max()) <= MAX_PROBABILITY_ERROR
    agreement = float(np.mean(outputs.argmax(axis=1) == forest.predict(inputs)))
    assert agreement >= MIN_LABEL_AGREEMENT


@pytest.mark.parametrize(
    "compiler, flags",
    [
        ("gcc", ["-std=c99", "-Wall", "-Wextra", "-O2"]),
        (
            "arm-none-eabi-gcc",
            ["-mcpu=cortex-m3", "-mthumb", "-std=gnu11", "-Wall", "-Wextra", "-O2"],
        ),
    ],
)
def test_trees_compile_without_warnings(
    generated: GeneratedModel, tmp_path: Path, compiler: str, flags: list[str]
) -> None:
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    include = str(generated.header.parent)
    output = str(tmp_path / "model.o")
    result = subprocess.run(
        [compiler, *flags, "-Werror", "-I", include, "-c", str(generated.source), "-o", output],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
