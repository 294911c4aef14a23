"""The Apache TVM (Relax) toolchain: contract, checks, artifacts, semantics, a real run."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper
from typer.testing import CliRunner

from deploybench.cli.app import app
from deploybench.errors import CompatibilityError, PluginError
from deploybench.harness.worker import _import_factory, functional_pass
from deploybench.hashing import sha256_file
from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.runner.preparation import prepare_experiment
from deploybench.spec import Problem
from deploybench.targets.local import LocalCpuTarget
from deploybench.testing.experiments import FAST_PLAN, make_experiment
from deploybench.testing.toolchain_contract import ToolchainContract
from deploybench.toolchains.base import MANIFEST_NAME, Deployable, SessionOptions, Severity
from deploybench.toolchains.pipeline import BuildError
from deploybench.toolchains.tvm import TvmConfig, TvmTargetConfig, TvmToolchain

pytestmark = pytest.mark.skipif(
    not TvmToolchain.availability().available,
    reason=f"tvm toolchain unavailable: {TvmToolchain.availability().reason}",
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "toolchains" / "tvm.md"
# Documented in docs/toolchains/tvm.md: TVM at opt_level 3 vs the opt_level 0 reference.
MAX_ABS_TOLERANCE = 1e-4
_SESSION = "deploybench.toolchains.tvm.session:open_session"


def _zoo(model: str) -> ResolvedProblem:
    return resolve_problem(Problem.model_validate({"model": model, "dataset": "zoo:digits"}))


@pytest.fixture(scope="module")
def mlp() -> ResolvedProblem:
    return _zoo("zoo:digits-mlp")


@pytest.fixture(scope="module")
def cnn() -> ResolvedProblem:
    return _zoo("zoo:digits-cnn")


class TestTvmContract(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> TvmToolchain:
        return TvmToolchain()

    @pytest.fixture
    def problem(self, mlp: ResolvedProblem) -> ResolvedProblem:
        return mlp

    @pytest.fixture(
        params=[
            {"opt_level": 3},
            {"opt_level": 1, "batch_size": 2, "target": {"num_cores": 1}},
        ],
        ids=["opt3", "opt1-static-batch"],
    )
    def config(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


class TestTvmCnnContract(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> TvmToolchain:
        return TvmToolchain()

    @pytest.fixture
    def problem(self, cnn: ResolvedProblem) -> ResolvedProblem:
        return cnn

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {"opt_level": 3}


def _outputs(deployable: Deployable, problem: ResolvedProblem, batch: int) -> np.ndarray:
    assert deployable.session_factory is not None
    session = _import_factory(deployable.session_factory)(deployable, SessionOptions(threads=1))
    try:
        outputs = functional_pass(session, problem.load_inputs(), batch, problem.n_samples)
    finally:
        session.close()
    return outputs["0"]


@pytest.mark.parametrize("model", ["zoo:digits-mlp", "zoo:digits-cnn"])
def test_optimized_outputs_match_reference_and_onnxruntime(model: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    problem = _zoo(model)
    toolchain = TvmToolchain()
    reference = _outputs(
        toolchain.build(problem, toolchain.reference_config(), tmp_path / "ref"), problem, 16
    )
    optimized = _outputs(toolchain.build(problem, TvmConfig(), tmp_path / "opt"), problem, 16)
    assert reference.shape == optimized.shape == (problem.n_samples, 10)
    assert np.abs(optimized - reference).max() <= MAX_ABS_TOLERANCE
    assert (optimized.argmax(axis=1) == reference.argmax(axis=1)).all()
    # An independent oracle: ONNX Runtime without graph optimizations.
    session = ort.InferenceSession(str(problem.model_path), providers=["CPUExecutionProvider"])
    expected = session.run(None, problem.load_inputs())[0]
    assert np.abs(reference - expected).max() <= MAX_ABS_TOLERANCE


def test_artifact_is_a_shared_library_in_the_manifest(mlp: ResolvedProblem, tmp_path: Path) -> None:
    deployable = TvmToolchain().build(mlp, TvmConfig(), tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["entry"] == "model.so"
    entry = next(item for item in manifest["files"] if item["path"] == "model.so")
    assert entry["role"] == "shared-library"
    library = tmp_path / "model.so"
    header = library.read_bytes()[:18]
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[16:18], "little") == 3  # e_type ET_DYN: a shared object
    assert entry["sha256"] == sha256_file(library) and entry["size"] == library.stat().st_size
    assert [s.name for s in deployable.steps] == ["import", "compile", "package"]
    compile_step = deployable.steps[1]
    assert compile_step.outputs == {"model.so": entry["sha256"]}
    assert compile_step.parameters["target"]["kind"] == "llvm"
    assert compile_step.parameters["target"]["opt-level"] == 3
    assert "model.relax.py" in deployable.steps[0].outputs
    assert "def main(" in (tmp_path / "model.relax.py").read_text()
    assert set(deployable.tool_versions) >= {"apache-tvm", "onnx", "llvm", "linker"}


def test_metaschedule_is_refused_with_the_reason(mlp: ResolvedProblem, tmp_path: Path) -> None:
    toolchain = TvmToolchain()
    config = toolchain.parse_config({"tuning": "metaschedule"})
    findings = toolchain.check(mlp, LocalCpuTarget().describe(), config)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    assert [f.code for f in errors] == ["tuning-unavailable"]
    assert "segmentation fault" in errors[0].message
    assert errors[0].fix == "set tuning: none"
    with pytest.raises(BuildError, match="MetaSchedule"):
        toolchain.build(mlp, config, tmp_path)
    experiment = make_experiment(toolchain="tvm", config={"tuning": "metaschedule"})
    with pytest.raises(CompatibilityError, match="tuning-unavailable"):
        prepare_experiment(experiment)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"opt_level": 4}, r"toolchain\.config\.opt_level: Input should be 0, 1, 2 or 3"),
        (
            {"tuning": "auto"},
            r"toolchain\.config\.tuning: Input should be 'none' or 'metaschedule'",
        ),
        ({"batch_size": 0}, r"toolchain\.config\.batch_size: Input should be greater than"),
        ({"target": {"mattr": ["avx2"]}}, r"toolchain\.config\.target\.mattr: each feature starts"),
        ({"target": {"num_cores": 0}}, r"toolchain\.config\.target\.num_cores"),
        ({"target": {"cpu": "x"}}, r"allowed keys: mattr, mcpu, num_cores"),
    ],
    ids=["opt-level", "tuning", "batch-size", "mattr", "num-cores", "target-key"],
)
def test_bad_config_values_name_what_is_allowed(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(PluginError, match=expected):
        TvmToolchain().parse_config(config)


def test_unknown_cpu_is_an_error_naming_close_ones(mlp: ResolvedProblem) -> None:
    config = TvmConfig(target=TvmTargetConfig(mcpu="skylake-avx5122"))
    findings = TvmToolchain().check(mlp, LocalCpuTarget().describe(), config)
    error = next(f for f in findings if f.code == "unknown-cpu")
    assert error.severity is Severity.ERROR
    assert "skylake-avx512" in (error.fix or "")


def _write(
    tmp_path: Path, nodes: list[onnx.NodeProto], y_shape: list[Any] | None = None
) -> ResolvedProblem:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape or ["N", 4])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    return resolve_problem(
        Problem.model_validate(
            {
                "model": {"path": str(tmp_path / "m.onnx")},
                "dataset": {"path": str(tmp_path / "d.npz")},
                "task": "classification",
            }
        )
    )


def test_operator_the_frontend_cannot_import_is_named(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("FancyOp", ["x"], ["h"], domain="com.example"),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    problem = _write(tmp_path, nodes, ["N", 4])
    findings = TvmToolchain().check(problem, LocalCpuTarget().describe(), TvmConfig())
    error = next(f for f in findings if f.code == "unsupported-op")
    assert error.subject == "FancyOp" and "FancyOp" in error.message


def test_shape_the_frontend_cannot_take_fails_the_trial_import(tmp_path: Path) -> None:
    # Pad amounts computed from the run-time shape of x: the frontend cannot import them.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Concat", ["s", "s"], ["pads"], axis=0, name="pads_from_shape"),
        helper.make_node("Pad", ["x", "pads"], ["y"], name="pad"),
    ]
    problem = _write(tmp_path, nodes, ["A", "B"])
    findings = TvmToolchain().check(problem, LocalCpuTarget().describe(), TvmConfig())
    error = next(f for f in findings if f.code == "frontend-cannot-import")
    assert error.severity is Severity.ERROR
    assert error.subject == "Pad"
    assert "Node pad cannot handle ShapeExpr inputs" in error.message


def test_unsupported_dtypes_are_errors_naming_the_allowed_ones(tmp_path: Path) -> None:
    problem = _write(tmp_path, [helper.make_node("Relu", ["x"], ["y"])])
    complex_output = problem.outputs[0].model_copy(update={"dtype": "complex64"})
    changed = problem.model_copy(update={"outputs": [complex_output]})
    findings = TvmToolchain().check(changed, LocalCpuTarget().describe(), TvmConfig())
    error = next(f for f in findings if f.code == "unsupported-dtype")
    assert error.severity is Severity.ERROR
    assert error.subject == "y" and "float32" in (error.fix or "")


def test_symbolic_batch_serves_any_batch_and_fixed_batch_conflicts(
    tmp_path: Path, mlp: ResolvedProblem
) -> None:
    findings = TvmToolchain().check(mlp, LocalCpuTarget().describe(), TvmConfig())
    assert "symbolic-shapes" in {f.code for f in findings}
    fixed = mlp.model_copy(update={"inputs": [mlp.inputs[0].model_copy(update={"shape": [3, 64]})]})
    findings = TvmToolchain().check(fixed, LocalCpuTarget().describe(), TvmConfig(batch_size=2))
    assert "batch-size-conflict" in {f.code for f in findings}
    deployable = TvmToolchain().build(mlp, TvmConfig(), tmp_path / "build")
    assert deployable.session_factory is not None
    session = _import_factory(deployable.session_factory)(deployable, SessionOptions(threads=1))
    inputs = mlp.load_inputs(limit=7)
    for size in (1, 7):
        (logits,) = session.run(session.prepare({"input": inputs["input"][:size]}))
        assert logits.shape == (size, 10)
    session.close()
    static = TvmToolchain().build(mlp, TvmConfig(batch_size=2), tmp_path / "static")
    session = _import_factory(_SESSION)(static, SessionOptions(threads=1))
    assert session.run(session.prepare({"input": inputs["input"][:2]}))[0].shape == (2, 10)
    with pytest.raises(ValueError, match="compiled for batch_size 2"):
        session.prepare({"input": inputs["input"][:3]})
    session.close()


def test_unavailable_without_tvm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tvm" else real(name, *a)
    )
    availability = TvmToolchain.availability()
    assert not availability.available
    assert "pip install 'deploybench[tvm]'" in (availability.reason or "")


def test_every_config_field_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    paths = [f"`{name}`" for name in TvmConfig.model_fields if name != "target"]
    paths += [f"`target.{name}`" for name in TvmTargetConfig.model_fields]
    missing = [path for path in paths if path not in text]
    assert not missing, f"docs/toolchains/tvm.md does not document {missing}"
    assert re.search(r"MetaSchedule", text) and "segmentation fault" in text


def test_deploybench_run_end_to_end(tmp_path: Path) -> None:
    experiment = tmp_path / "tvm.yaml"
    experiment.write_text(
        yaml.safe_dump(
            {
                "name": "tvm-mlp",
                "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
                "toolchain": {"name": "tvm", "config": {"opt_level": 3}},
                "environment": {"threads": 1},
                "measurement": {**FAST_PLAN, "repetitions": 1},
                "semantic_preservation": {"distance": "max_abs", "threshold": MAX_ABS_TOLERANCE},
            }
        )
    )
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(experiment), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["status"] == "succeeded", record["error"]
    assert [s["name"] for s in record["steps"]] == ["import", "compile", "package"]
    assert record["metrics"]["semantic_preservation"]["ratio"] == 1.0
    assert record["metrics"]["accuracy"]["accuracy"] >= 0.93
    assert record["reference"]["config"]["opt_level"] == 0
    assert record["session"]["runtime"] == "tvm" and record["session"]["threads"] == 1
    assert record["session"]["torch_kept_out"] is True
    library = record["artifacts"]["deployed_shared-library"]
    assert (out / "artifacts" / library).read_bytes()[:4] == b"\x7fELF"
