"""The OpenVINO toolchain: contract suite, precision that ran, INT8 accuracy, checks, and a
real `deploybench run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper
from typer.testing import CliRunner

from deploybench.cli.app import app
from deploybench.errors import PluginError
from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.runner import run_experiment
from deploybench.spec import Problem
from deploybench.targets.base import TargetInfo
from deploybench.targets.local import LocalCpuTarget
from deploybench.testing.experiments import FAST_PLAN, make_experiment
from deploybench.testing.toolchain_contract import ToolchainContract
from deploybench.toolchains.base import Deployable, Finding, SessionOptions, Severity, Toolchain
from deploybench.toolchains.onnxruntime import OnnxRuntimeToolchain
from deploybench.toolchains.onnxruntime.session import open_session as open_ort_session
from deploybench.toolchains.openvino import OpenVinoConfig, OpenVinoToolchain, checks
from deploybench.toolchains.openvino import session as ov_session
from deploybench.toolchains.openvino.properties import host_capabilities

pytest.importorskip("openvino")

HOST_BF16 = "BF16" in host_capabilities()
# Documented tolerances (docs/toolchains/openvino.md): f32 logits within 1e-4 of ONNX Runtime's;
# int8 keeps >= 97 % of the labels and loses at most 3 accuracy points on digits.
F32_MAX_ABS = 1e-4
INT8_LABEL_AGREEMENT = 0.97
INT8_MAX_ACCURACY_DROP = 0.03


def _problem(model: str | Path, dataset: str | Path = "zoo:digits") -> ResolvedProblem:
    def ref(value: str | Path) -> Any:
        return value if isinstance(value, str) else {"path": str(value)}

    data: dict[str, Any] = {"model": ref(model), "dataset": ref(dataset)}
    if isinstance(model, Path):
        data["task"] = "classification"
    return resolve_problem(Problem.model_validate(data))


@pytest.fixture(scope="module")
def mlp() -> ResolvedProblem:
    return _problem("zoo:digits-mlp")


@pytest.fixture(scope="module")
def cnn() -> ResolvedProblem:
    return _problem("zoo:digits-cnn")


CONFIGS = [
    pytest.param({"precision": "f32", "hint": "latency"}, id="f32-latency"),
    pytest.param(
        {"precision": "bf16"},
        id="bf16",
        marks=pytest.mark.skipif(not HOST_BF16, reason="this CPU has no bf16 kernels"),
    ),
    pytest.param({"precision": "int8", "calibration_samples": 32}, id="int8"),
]


class TestOpenVinoContract(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        return OpenVinoToolchain()

    @pytest.fixture
    def problem(self, mlp: ResolvedProblem) -> ResolvedProblem:
        return mlp

    @pytest.fixture(params=CONFIGS)
    def config(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


@pytest.mark.slow
class TestOpenVinoContractCnn(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        return OpenVinoToolchain()

    @pytest.fixture
    def problem(self, cnn: ResolvedProblem) -> ResolvedProblem:
        return cnn

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {"precision": "f32"}


def _outputs(
    toolchain: Toolchain, problem: ResolvedProblem, raw: dict[str, Any], root: Path
) -> tuple[np.ndarray, dict[str, Any], Deployable]:
    deployable = toolchain.build(problem, toolchain.parse_config(raw), root)
    factory = open_ort_session if toolchain.name == "onnxruntime" else ov_session.open_session
    session = factory(deployable, SessionOptions(threads=1))
    inputs = problem.load_inputs()
    logits = np.asarray(session.run(session.prepare(inputs))[0])
    info = session.info()
    session.close()
    return logits, info, deployable


@pytest.mark.parametrize("name", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_f32_matches_onnxruntime_and_records_f32(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    problem: ResolvedProblem = request.getfixturevalue(name)
    reference, _, _ = _outputs(
        OnnxRuntimeToolchain(), problem, {"graph_optimization": "disabled"}, tmp_path / "ort"
    )
    logits, info, _ = _outputs(OpenVinoToolchain(), problem, {"precision": "f32"}, tmp_path / "ov")
    assert logits.shape == reference.shape == (problem.n_samples, 10)
    assert float(np.abs(logits - reference).max()) <= F32_MAX_ABS
    assert (logits.argmax(1) == reference.argmax(1)).all()
    assert info["precision"] == "f32" and info["inference_precision"] == "f32"
    assert info["execution_devices"] == ["CPU"]
    assert info["inference_num_threads"] == 1
    assert set(info["runtime_precisions"]) <= {"f32", "i32", "i64"}


def test_int8_quantizes_reports_its_accuracy_drop_and_runs_int8(
    mlp: ResolvedProblem, tmp_path: Path
) -> None:
    toolchain = OpenVinoToolchain()
    reference, _, _ = _outputs(toolchain, mlp, {"precision": "f32"}, tmp_path / "f32")
    logits, info, deployable = _outputs(
        toolchain, mlp, {"precision": "int8", "calibration_samples": 64}, tmp_path / "int8"
    )
    assert info["precision"] == "int8" and info["inference_precision"] == "f32"
    assert {"i8", "u8"} & set(info["runtime_precisions"]), info["runtime_precisions"]
    agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
    assert agreement >= INT8_LABEL_AGREEMENT
    assert [s.name for s in deployable.steps] == ["convert", "quantize", "evaluate", "package"]
    assert deployable.tool_versions.keys() == {"openvino", "nncf"}
    report = json.loads((deployable.root / "quantization_report.json").read_text())
    assert report["samples"] == mlp.n_samples
    assert abs(report["accuracy_drop"]) <= INT8_MAX_ACCURACY_DROP
    assert report["accuracy_drop"] == pytest.approx(
        report["reference_accuracy"] - report["int8_accuracy"]
    )
    assert report["label_agreement"] == pytest.approx(agreement, abs=0.01)
    evaluate = next(s for s in deployable.steps if s.name == "evaluate")
    assert "accuracy drop" in evaluate.log
    quantize = next(s for s in deployable.steps if s.name == "quantize")
    assert "'calibration_samples': 64" in quantize.log


def test_session_refuses_a_precision_the_plugin_changed(
    mlp: ResolvedProblem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a bf16 CPU does to a model compiled without an explicit hint, simulated: asking
    # f32 and getting bf16 must fail, never measure bf16 under the f32 label.
    deployable = OpenVinoToolchain().build(mlp, OpenVinoConfig(precision="f32"), tmp_path)
    real = ov_session.compiled_facts

    def bf16_facts(compiled: Any) -> dict[str, Any]:
        return {**real(compiled), "inference_precision": "bf16"}

    monkeypatch.setattr(ov_session, "compiled_facts", bf16_facts)
    with pytest.raises(RuntimeError, match=r"precision 'f32'.*compiled the model with bf16"):
        ov_session.open_session(deployable, SessionOptions(threads=1))


@pytest.mark.skipif(HOST_BF16, reason="this CPU has bf16 kernels")
def test_bf16_on_a_cpu_without_it_is_refused_before_and_at_run(
    mlp: ResolvedProblem, tmp_path: Path
) -> None:
    toolchain = OpenVinoToolchain()
    config = OpenVinoConfig(precision="bf16")
    findings = toolchain.check(mlp, LocalCpuTarget().describe(), config)
    error = next(f for f in findings if f.code == "precision-unavailable")
    assert error.severity is Severity.ERROR and "f32" in (error.fix or "")
    deployable = toolchain.build(mlp, config, tmp_path)
    package = next(s for s in deployable.steps if s.name == "package")
    assert "WARNING precision 'bf16'" in package.log
    with pytest.raises(RuntimeError, match="refusing to measure another precision"):
        ov_session.open_session(deployable, SessionOptions(threads=1))


@pytest.mark.skipif(not HOST_BF16, reason="this CPU has no bf16 kernels")
def test_bf16_runs_and_records_bf16(mlp: ResolvedProblem, tmp_path: Path) -> None:
    logits, info, _ = _outputs(OpenVinoToolchain(), mlp, {"precision": "bf16"}, tmp_path)
    assert info["inference_precision"] == "bf16"
    assert logits.shape == (mlp.n_samples, 10)


def _remote(flags: list[str]) -> TargetInfo:
    return TargetInfo(
        name="board",
        kind="remote",
        description="a remote CPU",
        cores=4,
        isa_features=flags,
        executes=["python-session"],
    )


def _codes(findings: list[Finding], severity: Severity = Severity.ERROR) -> set[str]:
    return {f.code for f in findings if f.severity is severity}


def test_precision_availability_of_other_targets_comes_from_their_cpu_flags() -> None:
    bf16 = OpenVinoConfig(precision="bf16")
    assert _codes(checks.precision_findings(bf16, _remote(["avx2"]))) == {"precision-unavailable"}
    assert checks.precision_findings(bf16, _remote(["avx2", "avx512_bf16"])) == []
    f16 = OpenVinoConfig(precision="f16")
    assert _codes(checks.precision_findings(f16, _remote(["amx_bf16"]))) == {
        "precision-unavailable"
    }
    assert checks.precision_findings(f16, _remote(["amx_fp16"])) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"precision": "fp64"}, r"toolchain\.config\.precision: .*'f32', 'bf16', 'f16' or 'int8'"),
        ({"hint": "fast"}, r"toolchain\.config\.hint: .*'latency' or 'throughput'"),
        ({"streams": "many"}, r"toolchain\.config\.streams: must be a positive integer or 'auto'"),
        ({"streams": 0}, r"toolchain\.config\.streams: must be a positive integer or 'auto'"),
        ({"threads": 0}, r"toolchain\.config\.threads: .*greater than or equal to 1"),
        ({"quantization_preset": "x"}, r"'performance' or 'mixed'"),
        ({"precison": "f32"}, r"unknown key 'precison' \(did you mean 'precision'\?\)"),
    ],
)
def test_bad_config_values_name_what_is_allowed(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(PluginError, match=expected):
        OpenVinoToolchain().parse_config(raw)


def test_streams_and_threads_above_the_cores_warn() -> None:
    findings = checks.thread_findings(OpenVinoConfig(streams=8, threads=2), _remote([]))
    assert _codes(findings, Severity.WARNING) == {"streams-above-cores", "streams-above-threads"}
    assert checks.thread_findings(OpenVinoConfig(streams=2, threads=2), _remote([])) == []


def test_throughput_hint_and_streams_reach_the_plugin(mlp: ResolvedProblem, tmp_path: Path) -> None:
    config = OpenVinoConfig(hint="throughput", streams=2, threads=2)
    deployable = OpenVinoToolchain().build(mlp, config, tmp_path)
    assert json.loads((tmp_path / "openvino_config.json").read_text()) == {
        "CPU": {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": "2",
            "INFERENCE_NUM_THREADS": "2",
        }
    }
    session = ov_session.open_session(deployable, SessionOptions(threads=1))
    info = session.info()
    session.close()
    # The config's threads win over environment.threads; the plugin reports what it used.
    assert info["properties"]["INFERENCE_NUM_THREADS"] == "2"
    assert info["performance_hint"] == "throughput"
    assert info["num_streams"] == min(2, os.cpu_count() or 1)


def _write_model(
    tmp_path: Path,
    nodes: list[onnx.NodeProto],
    shape: list[Any] | None = None,
    opsets: list[onnx.OperatorSetIdProto] | None = None,
) -> tuple[Path, Path]:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    return path, data


def test_an_operator_openvino_cannot_convert_is_named(tmp_path: Path) -> None:
    node = helper.make_node("FancyOp", ["x"], ["y"], domain="com.example")
    model, data = _write_model(
        tmp_path,
        [node],
        ["N", 4],
        [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
    )
    findings = OpenVinoToolchain().check(
        _problem(model, data), LocalCpuTarget().describe(), OpenVinoConfig()
    )
    error = next(f for f in findings if f.code == "unsupported-op")
    assert "FancyOp" in error.message and error.severity is Severity.ERROR


def test_an_input_of_unknown_rank_is_refused(mlp: ResolvedProblem, tmp_path: Path) -> None:
    # onnx's full check (problem resolution) refuses such a file; a model that gets past it,
    # e.g. from a looser exporter, must still be stopped before the CPU plugin fails on it.
    model, _ = _write_model(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], None)
    problem = mlp.model_copy(update={"model_path": model, "operators": ["Relu"]})
    findings = OpenVinoToolchain().check(problem, LocalCpuTarget().describe(), OpenVinoConfig())
    assert "dynamic-rank" in _codes(findings)


def test_int8_of_a_model_without_quantizable_layers_is_refused(tmp_path: Path) -> None:
    model, data = _write_model(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], ["N", 4])
    findings = OpenVinoToolchain().check(
        _problem(model, data), LocalCpuTarget().describe(), OpenVinoConfig(precision="int8")
    )
    assert _codes(findings) == {"nothing-to-quantize"}
    assert _codes(findings, Severity.WARNING) == {"few-calibration-samples"}


def test_a_format_it_cannot_convert_is_refused_with_the_way_out(mlp: ResolvedProblem) -> None:
    tflite_problem = mlp.model_copy(update={"model_format": "tflite"})
    findings = OpenVinoToolchain().check(
        tflite_problem, LocalCpuTarget().describe(), OpenVinoConfig()
    )
    assert [f.code for f in findings] == ["unsupported-format"]
    assert "ONNX or PyTorch models, not tflite" in findings[0].message
    assert "ONNX" in (findings[0].fix or "")


def test_unavailable_without_openvino_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "openvino" else real(name, *a),
    )
    availability = OpenVinoToolchain.availability()
    assert not availability.available
    assert "pip install 'deploybench[openvino]'" in (availability.reason or "")


def test_listing_plugins_imports_neither_openvino_nor_nncf() -> None:
    code = (
        "import sys\n"
        "from deploybench.plugins import list_plugins\n"
        "rows = {r.name: r for r in list_plugins()}\n"
        "assert rows['openvino'].availability.available, rows['openvino'].availability\n"
        "print(','.join(n for n in ('openvino', 'nncf', 'torch') if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_run_f32_preserves_the_reference_and_records_the_precision(tmp_path: Path) -> None:
    experiment = make_experiment(
        toolchain="openvino",
        config={"precision": "f32"},
        semantic_preservation={"distance": "max_abs", "threshold": F32_MAX_ABS},
        measurement={"repetitions": 1},
    )
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.status == "succeeded", record.error
    assert record.metrics["semantic_preservation"]["ratio"] == 1.0
    assert record.session["precision"] == "f32"
    assert record.session["inference_precision"] == "f32"
    assert record.session["inference_num_threads"] == 1  # environment.threads reaches the plugin
    assert record.reference["config"]["precision"] == "f32"
    assert [s.name for s in record.steps] == ["convert", "package"]


def test_run_records_openvinos_own_latency_beside_the_harness_one(tmp_path: Path) -> None:
    experiment = make_experiment(
        toolchain="openvino", config={"precision": "f32"}, measurement={"repetitions": 1}
    )
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.status == "succeeded", record.error
    runtime, harness = record.metrics["runtime_latency_ms"], record.metrics["latency_ms"]
    assert runtime["provenance"] == "runtime-reported"
    assert runtime["n"] == harness["n"]
    # InferRequest.latency is measured inside the call the harness times around: it cannot
    # exceed it (1 us of slack for the two clocks' rounding).
    assert 0 < runtime["median"] <= harness["median"] + 1e-3
    with np.load(tmp_path / "raw_latencies.npz") as raw:
        reported, wall = raw["runtime_repetition_0"], raw["repetition_0"]
    assert reported.dtype == np.int64 and reported.shape == wall.shape
    assert np.median(reported) > 0


def test_deploybench_run_int8_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "digits-mlp-openvino-int8.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "openvino-int8",
                "problem": {"model": "zoo:digits-mlp", "dataset": "zoo:digits"},
                "toolchain": {
                    "name": "openvino",
                    "config": {"precision": "int8", "calibration_samples": 64},
                },
                "environment": {"threads": 1},
                "measurement": {**FAST_PLAN, "repetitions": 1},
                "semantic_preservation": {"distance": "label", "threshold": 0.0},
            }
        )
    )
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(path), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), "NNCF output leaked onto stdout"
    record = json.loads(lines[-1])
    assert record["status"] == "succeeded"
    assert record["session"]["precision"] == "int8"
    assert {"i8", "u8"} & set(record["session"]["runtime_precisions"])
    metrics = record["metrics"]
    drop = metrics["reference_accuracy"]["accuracy"] - metrics["accuracy"]["accuracy"]
    assert abs(drop) <= INT8_MAX_ACCURACY_DROP
    assert metrics["semantic_preservation"]["ratio"] >= INT8_LABEL_AGREEMENT
    assert [s["name"] for s in record["steps"]] == ["convert", "quantize", "evaluate", "package"]
    assert "deployed_quantization-report" in record["artifacts"]


@pytest.mark.slow
def test_cnn_int8_mixed_preset(tmp_path: Path) -> None:
    experiment = make_experiment(
        model="zoo:digits-cnn",
        toolchain="openvino",
        config={"precision": "int8", "calibration_samples": 32, "quantization_preset": "mixed"},
        semantic_preservation={"distance": "label", "threshold": 0.0},
        measurement={"repetitions": 1},
    )
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.status == "succeeded", record.error
    assert record.metrics["accuracy"]["accuracy"] >= 0.9
    assert record.metrics["semantic_preservation"]["ratio"] >= 0.95
    quantize = next(s for s in record.steps if s.name == "quantize")
    assert "'preset': 'mixed'" in quantize.log and "'calibration_samples': 32" in quantize.log
