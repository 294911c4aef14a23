"""The PyTorch toolchain: PyTorch problems (state dict + module file), the contract suite per
mode, semantic preservation against eager, INT8 accuracy, refusals, and a real
`deploybench run`."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from deploybench.cli.app import app
from deploybench.errors import ModelError, PluginError
from deploybench.problems import ResolvedProblem, resolve_problem
from deploybench.spec import Problem
from deploybench.targets.local import LocalCpuTarget
from deploybench.testing.experiments import FAST_PLAN
from deploybench.testing.toolchain_contract import ToolchainContract
from deploybench.toolchains.base import SessionOptions, Severity, Toolchain
from deploybench.toolchains.pytorch import PyTorchConfig, PyTorchToolchain
from deploybench.toolchains.pytorch.session import open_session

torch = pytest.importorskip("torch")

# Documented tolerances (docs/toolchains/pytorch.md): every fp32 mode within 1e-4 of eager;
# dynamic int8 loses at most 3 accuracy points on digits.
FP32_MAX_ABS = 1e-4
INT8_MAX_ACCURACY_DROP = 0.03

MLP_SOURCE = textwrap.dedent(
    """
    from torch import nn


    class Mlp(nn.Module):
        def __init__(self, hidden: int = 32) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

        def forward(self, x):
            return self.body(x)
    """
)


@pytest.fixture(scope="module")
def cnn() -> ResolvedProblem:
    return resolve_problem(
        Problem.model_validate({"model": "zoo:digits-cnn-torch", "dataset": "zoo:digits"})
    )


def _mlp_files(root: Path, hidden: int = 32) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    module = root / "net.py"
    module.write_text(MLP_SOURCE)
    torch.manual_seed(0)
    from torch import nn

    model = nn.Module()
    model.body = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    weights = root / "weights.pt"
    torch.save(model.state_dict(), weights)
    return module, weights


def _mlp_problem(root: Path, **model: Any) -> Problem:
    module, weights = _mlp_files(root)
    data = {
        "format": "pytorch",
        "path": str(weights),
        "module": f"{module}:Mlp",
        "kwargs": {"hidden": 32},
        "inputs": [{"name": "input", "shape": ["N", 64], "dtype": "float32"}],
        "outputs": ["logits"],
        **model,
    }
    return Problem.model_validate(
        {"model": data, "dataset": "zoo:digits", "task": "classification"}
    )


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> ResolvedProblem:
    return resolve_problem(_mlp_problem(tmp_path_factory.mktemp("mlp")))


CONFIGS = [
    pytest.param({"mode": "eager"}, id="eager"),
    pytest.param({"mode": "torchscript"}, id="torchscript"),
    pytest.param({"mode": "eager", "quantization": "dynamic-int8"}, id="eager-int8"),
    pytest.param({"mode": "torchscript", "quantization": "dynamic-int8"}, id="torchscript-int8"),
]


class TestPyTorchContract(ToolchainContract):
    @pytest.fixture
    def toolchain(self) -> Toolchain:
        return PyTorchToolchain()

    @pytest.fixture
    def problem(self, cnn: ResolvedProblem) -> ResolvedProblem:
        return cnn

    @pytest.fixture(params=CONFIGS)
    def config(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        value: dict[str, Any] = request.param
        return value


class TestPyTorchContractMlp(TestPyTorchContract):
    @pytest.fixture
    def problem(self, mlp: ResolvedProblem) -> ResolvedProblem:
        return mlp

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {"mode": "torchscript"}


# export-aoti and compile are not run through the whole contract here: each AOTInductor
# build compiles C++ for about 30-40 s, three per contract run, which CI's budget cannot
# take. test_fp32_modes_match_eager builds, runs and checks the steps of both instead.


def _outputs(
    problem: ResolvedProblem, raw: dict[str, Any], root: Path
) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    toolchain = PyTorchToolchain()
    deployable = toolchain.build(problem, toolchain.parse_config(raw), root)
    session = open_session(deployable, SessionOptions(threads=1))
    feed = session.prepare(problem.load_inputs())
    logits = np.asarray(session.run(feed)[0])
    info = session.info()
    session.close()
    return logits, info, [s.name for s in deployable.steps]


@pytest.mark.parametrize(
    ("name", "raw", "steps"),
    [
        ("mlp", {"mode": "torchscript"}, ["load-state-dict", "script"]),
        ("cnn", {"mode": "torchscript"}, ["load-state-dict", "script"]),
        pytest.param(
            "cnn",
            {"mode": "export-aoti"},
            ["load-state-dict", "export", "aoti-package"],
            marks=pytest.mark.slow,
        ),
        pytest.param("cnn", {"mode": "compile"}, ["load-state-dict"], marks=pytest.mark.slow),
    ],
)
def test_fp32_modes_match_eager(
    name: str, raw: dict[str, Any], steps: list[str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    problem: ResolvedProblem = request.getfixturevalue(name)
    reference, ref_info, _ = _outputs(problem, {"mode": "eager"}, tmp_path / "eager")
    logits, info, names = _outputs(problem, raw, tmp_path / "deployed")
    assert logits.shape == reference.shape == (problem.n_samples, 10)
    assert float(np.abs(logits - reference).max()) <= FP32_MAX_ABS
    assert (logits.argmax(1) == reference.argmax(1)).all()
    assert names == steps
    assert info["mode"] == raw["mode"] and info["version"] == torch.__version__
    assert info["threads"] == 1 and ref_info["mode"] == "eager"
    if raw["mode"] == "compile":
        (seconds,) = info["compile_seconds"].values()
        assert seconds > 0


def test_eager_matches_the_onnx_digits_cnn(cnn: ResolvedProblem, tmp_path: Path) -> None:
    """zoo:digits-cnn-torch holds the very weights of zoo:digits-cnn."""
    from deploybench.toolchains.onnxruntime import OnnxRuntimeToolchain
    from deploybench.toolchains.onnxruntime.session import open_session as open_ort

    onnx_problem = resolve_problem(
        Problem.model_validate({"model": "zoo:digits-cnn", "dataset": "zoo:digits"})
    )
    ort = OnnxRuntimeToolchain()
    deployable = ort.build(onnx_problem, ort.reference_config(), tmp_path / "ort")
    session = open_ort(deployable, SessionOptions(threads=1))
    reference = np.asarray(session.run(session.prepare(onnx_problem.load_inputs()))[0])
    logits, _, _ = _outputs(cnn, {"mode": "eager"}, tmp_path / "torch")
    assert float(np.abs(logits - reference).max()) <= FP32_MAX_ABS


def test_dynamic_int8_quantizes_linear_and_keeps_accuracy(
    cnn: ResolvedProblem, tmp_path: Path
) -> None:
    truth = cnn.load_truth()
    reference, _, _ = _outputs(cnn, {"mode": "eager"}, tmp_path / "eager")
    logits, info, steps = _outputs(
        cnn, {"mode": "eager", "quantization": "dynamic-int8"}, tmp_path / "int8"
    )
    assert steps == ["load-state-dict", "quantize"]
    assert info["quantization"] == "dynamic-int8"
    assert not np.array_equal(logits, reference)  # the Linear layer really runs in int8
    drop = float(np.mean(reference.argmax(1) == truth) - np.mean(logits.argmax(1) == truth))
    assert drop <= INT8_MAX_ACCURACY_DROP


def test_check_findings(cnn: ResolvedProblem) -> None:
    toolchain = PyTorchToolchain()
    target = LocalCpuTarget().describe()
    bad = toolchain.check(
        cnn, target, PyTorchConfig(mode="export-aoti", quantization="dynamic-int8")
    )
    assert [f.code for f in bad if f.severity is Severity.ERROR] == ["quantization-mode"]
    int8 = toolchain.check(cnn, target, PyTorchConfig(quantization="dynamic-int8"))
    assert [f.code for f in int8] == ["conv-stays-fp32"]


def test_an_onnx_problem_is_refused_with_the_way_out(tmp_path: Path) -> None:
    onnx_problem = resolve_problem(
        Problem.model_validate({"model": "zoo:digits-mlp", "dataset": "zoo:digits"})
    )
    findings = PyTorchToolchain().check(onnx_problem, LocalCpuTarget().describe(), PyTorchConfig())
    (finding,) = findings
    assert finding.severity is Severity.ERROR and finding.code == "unsupported-format"
    assert "onnxruntime" in (finding.fix or "")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"mode": "jit"}, "'eager', 'torchscript', 'compile' or 'export-aoti'"),
        ({"quantization": "static-int8"}, "'none' or 'dynamic-int8'"),
        ({"compile_mode": "fast"}, "max-autotune-no-cudagraphs"),
    ],
)
def test_bad_config_values_name_what_is_allowed(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(PluginError) as info:
        PyTorchToolchain().parse_config(raw)
    assert expected in str(info.value)


def test_a_pickled_full_model_is_refused(tmp_path: Path) -> None:
    problem = _mlp_problem(tmp_path)
    from torch import nn

    assert problem.model.path is not None
    torch.save(nn.Sequential(nn.Linear(64, 10)), problem.model.path)
    with pytest.raises(ModelError, match=r"not a plain state dict.*model\.state_dict\(\)"):
        resolve_problem(problem)


@pytest.mark.parametrize(
    "content",
    [b"garbage, not a torch file", pickle.dumps({"a": 1})],
    ids=["garbage", "plain-pickle"],
)
def test_a_file_that_is_no_state_dict_is_refused(content: bytes, tmp_path: Path) -> None:
    problem = _mlp_problem(tmp_path)
    assert problem.model.path is not None
    problem.model.path.write_bytes(content)
    with pytest.raises(ModelError, match=r"model\.state_dict\(\)"):
        resolve_problem(problem)


def test_a_saved_tensor_is_not_a_state_dict(tmp_path: Path) -> None:
    problem = _mlp_problem(tmp_path)
    assert problem.model.path is not None
    torch.save(torch.zeros(3), problem.model.path)
    with pytest.raises(ModelError, match=r"holds a Tensor, not a state dict"):
        resolve_problem(problem)


def test_missing_class_and_key_mismatch_are_named(tmp_path: Path) -> None:
    module = f"{tmp_path / 'a' / 'net.py'}"
    with pytest.raises(ModelError, match=r"no class 'Net'; nn.Module classes there: Mlp"):
        resolve_problem(_mlp_problem(tmp_path / "a", module=f"{module}:Net"))
    with pytest.raises(
        ModelError, match=r"missing keys: body\.0\.bias, body\.0\.weight; unexpected keys: first"
    ):
        resolve_problem(_renamed(tmp_path))
    with pytest.raises(ModelError, match=r"size mismatch"):
        resolve_problem(_mlp_problem(tmp_path / "c", kwargs={"hidden": 16}))


def _renamed(tmp_path: Path) -> Problem:
    problem = _mlp_problem(tmp_path / "d")
    assert problem.model.path is not None
    state = torch.load(problem.model.path, weights_only=True)
    state = {k.replace("body.0.", "first."): v for k, v in state.items()}
    torch.save(state, problem.model.path)
    return problem


def test_a_torch_model_needs_module_and_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs 'module'"):
        Problem.model_validate(
            {
                "model": {"format": "torch", "path": str(tmp_path / "w.pt")},
                "dataset": "zoo:digits",
                "task": "classification",
            }
        )


def test_a_zoo_model_takes_no_torch_fields() -> None:
    with pytest.raises(ValueError, match="an open \\(zoo\\) model knows its own"):
        Problem.model_validate(
            {"model": {"zoo": "digits-cnn-torch", "module": "x.py:Net"}, "dataset": "zoo:digits"}
        )


def test_dataset_is_validated_against_declared_inputs(tmp_path: Path) -> None:
    from deploybench.errors import DatasetError

    problem = _mlp_problem(
        tmp_path, inputs=[{"name": "pixels", "shape": ["N", 64], "dtype": "float32"}]
    )
    with pytest.raises(DatasetError, match="no array named 'pixels'"):
        resolve_problem(problem)


def test_deploybench_run_torch_problem_int8_end_to_end(tmp_path: Path) -> None:
    _mlp_files(tmp_path / "model")
    path = tmp_path / "torch-int8.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "torch-int8",
                "problem": {
                    "model": {
                        "format": "pytorch",
                        "path": "model/weights.pt",
                        "module": "model/net.py:Mlp",
                        "kwargs": {"hidden": 32},
                        "inputs": [{"name": "input", "shape": ["N", 64]}],
                        "outputs": ["logits"],
                    },
                    "dataset": "zoo:digits",
                    "task": "classification",
                },
                "toolchain": {
                    "name": "pytorch",
                    "config": {"mode": "torchscript", "quantization": "dynamic-int8"},
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
    record = json.loads(lines[-1])
    assert record["status"] == "succeeded", record.get("error")
    assert record["session"]["mode"] == "torchscript"
    assert record["session"]["quantization"] == "dynamic-int8"
    assert record["reference"]["toolchain"] == "pytorch"
    assert record["reference"]["config"]["mode"] == "eager"
    assert record["reference"]["config"]["quantization"] == "none"
    metrics = record["metrics"]
    drop = metrics["reference_accuracy"]["accuracy"] - metrics["accuracy"]["accuracy"]
    assert abs(drop) <= INT8_MAX_ACCURACY_DROP
    assert [s["name"] for s in record["steps"]] == ["load-state-dict", "quantize", "script"]
