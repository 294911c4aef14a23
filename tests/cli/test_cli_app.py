"""The command line: informational commands, `check`, and exit code 2 for user errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

import deploybench
from deploybench.cli.app import app
from deploybench.cli.common import EXIT_RUN_FAILED, EXIT_USER_ERROR
from deploybench.plugins import Availability, PluginKind, registered

WriteExperiment = Callable[..., Path]
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "digits-mlp-ort-int8.yaml"
TINY_PROBLEM = {"model": "./tiny.onnx", "dataset": "data.npz", "task": "classification"}


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _user_error(*args: str) -> str:
    """Run the CLI, expect exit 2 and an ``error:`` line on stderr; return stderr."""
    result = _invoke(*args)
    assert result.exit_code == EXIT_USER_ERROR, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    assert "error: " in result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_exit_codes() -> None:
    assert (EXIT_RUN_FAILED, EXIT_USER_ERROR) == (1, 2)


def test_version() -> None:
    result = _invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"deploybench {deploybench.__version__}"


def test_schema_prints_json_schema() -> None:
    result = _invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert {"name", "problem", "toolchain", "measurement"} <= set(schema["properties"])


def test_plugins_lists_builtins() -> None:
    result = _invoke("plugins")
    assert result.exit_code == 0
    for name in ("onnxruntime", "local", "peak-rss", "cpu-time", "thermal"):
        assert name in result.stdout
    assert "deploybench 0.1.0" in result.stdout


def test_plugins_shows_unavailability_reason_verbatim() -> None:
    class Missing:
        @classmethod
        def availability(cls) -> Availability:
            return Availability.of_modules("deploybench_absent_mod", extra="board")

    with registered(PluginKind.TARGET, "board", Missing):
        result = _invoke("plugins")
    assert result.exit_code == 0
    assert "board" in result.stdout
    # the bracketed extra must not be swallowed as console markup
    assert "pip install 'deploybench[board]'" in result.stdout


def test_zoo_list() -> None:
    result = _invoke("zoo", "list")
    assert result.exit_code == 0
    for name in ("digits-mlp", "digits-cnn", "diabetes-linear", "digits", "diabetes"):
        assert name in result.stdout
    assert "classification" in result.stdout
    assert "regression" in result.stdout


def test_check_example() -> None:
    result = _invoke("check", str(EXAMPLE))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert f"ok {EXAMPLE}: digits-mlp-ort-int8" in result.stdout
    assert result.stderr == ""


def test_check_user_problem(write_experiment: WriteExperiment) -> None:
    path = write_experiment()
    result = _invoke("check", str(path))
    assert result.exit_code == 0, result.stderr
    assert f"ok {path}: tiny" in result.stdout


def test_check_prints_findings_with_their_severity(
    write_experiment: WriteExperiment, user_files: Path
) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["input", "b"], ["out"])],
        "add",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.ones(4, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(user_files / "add.onnx"))
    path = write_experiment(
        problem={**TINY_PROBLEM, "model": "add.onnx", "task": "regression"},
        toolchain={"name": "onnxruntime", "config": {"quantization": "dynamic-int8"}},
    )
    np.savez(
        user_files / "data.npz",
        input=np.zeros((3, 4), np.float32),
        targets=np.zeros((3, 4), np.float32),
    )
    result = _invoke("check", str(path))
    assert result.exit_code == 0, result.stderr
    assert "[warning] nothing-to-quantize" in result.stdout


def test_check_several_files_stops_at_the_bad_one(
    write_experiment: WriteExperiment, user_files: Path
) -> None:
    good = write_experiment("good.yaml")
    bad = write_experiment("bad.yaml", toolchain={"name": "nope"})
    result = _invoke("check", str(good), str(bad))
    assert result.exit_code == EXIT_USER_ERROR
    assert f"ok {good}: tiny" in result.stdout
    assert "unknown toolchain 'nope'" in result.stderr


def test_check_without_arguments_is_a_usage_error() -> None:
    assert _invoke("check").exit_code == 2


def test_missing_experiment_file(tmp_path: Path) -> None:
    stderr = _user_error("check", str(tmp_path / "absent.yaml"))
    assert "absent.yaml: no such experiment file" in stderr


def test_malformed_yaml(user_files: Path) -> None:
    path = user_files / "broken.yaml"
    path.write_text("name: x\nproblem: {model: zoo:digits-mlp\n")
    stderr = _user_error("check", str(path))
    assert "malformed YAML at line" in stderr
    assert "column" in stderr


def test_unknown_key(write_experiment: WriteExperiment) -> None:
    stderr = _user_error("check", str(write_experiment(measurment={"profile": "quick"})))
    assert "measurment: unknown key 'measurment' (did you mean 'measurement'?)" in stderr
    assert "allowed keys:" in stderr


def test_unknown_toolchain(write_experiment: WriteExperiment) -> None:
    stderr = _user_error("check", str(write_experiment(toolchain={"name": "onnxruntim"})))
    assert "unknown toolchain 'onnxruntim' (did you mean 'onnxruntime'?)" in stderr
    assert "known toolchains: cgen, litert, onnxruntime" in stderr


def test_unknown_target(write_experiment: WriteExperiment) -> None:
    stderr = _user_error("check", str(write_experiment(target={"name": "jetson"})))
    assert "unknown target 'jetson'" in stderr
    assert "known targets: local" in stderr


def test_target_options_are_refused(write_experiment: WriteExperiment) -> None:
    stderr = _user_error(
        "check", str(write_experiment(target={"name": "local", "config": {"a": 1}}))
    )
    assert "target 'local' takes no options" in stderr


def test_unsatisfied_toolchain_version(write_experiment: WriteExperiment) -> None:
    path = write_experiment(toolchain={"name": "onnxruntime", "version": "<0.1"})
    stderr = _user_error("check", str(path))
    assert "does not satisfy '<0.1'" in stderr


def test_missing_model_file(write_experiment: WriteExperiment, user_files: Path) -> None:
    path = write_experiment(problem={**TINY_PROBLEM, "model": "./absent.onnx"})
    stderr = _user_error("check", str(path))
    assert f"model file {user_files / 'absent.onnx'} does not exist" in stderr


def test_non_onnx_model_file(write_experiment: WriteExperiment, user_files: Path) -> None:
    (user_files / "model.pt").write_bytes(b"torch-ish bytes")
    stderr = _user_error(
        "check", str(write_experiment(problem={**TINY_PROBLEM, "model": "model.pt"}))
    )
    assert "is a PyTorch model: problem.model needs 'module'" in stderr


def test_model_with_unknown_suffix(write_experiment: WriteExperiment, user_files: Path) -> None:
    (user_files / "model.bin").write_bytes(b"\x00")
    path = write_experiment(problem={**TINY_PROBLEM, "model": "model.bin"})
    assert "cannot tell the format" in _user_error("check", str(path))


@pytest.mark.parametrize(
    "content", [b"\x08\x96\x01 not protobuf \xff\xff\xff", b"plain text renamed to onnx\n"]
)
def test_corrupt_onnx(write_experiment: WriteExperiment, user_files: Path, content: bytes) -> None:
    (user_files / "corrupt.onnx").write_bytes(content)
    path = write_experiment(problem={**TINY_PROBLEM, "model": "corrupt.onnx"})
    stderr = _user_error("check", str(path))
    assert f"{user_files / 'corrupt.onnx'} is not a valid ONNX model" in stderr


def test_truncated_onnx(write_experiment: WriteExperiment, user_files: Path) -> None:
    data = (user_files / "tiny.onnx").read_bytes()
    (user_files / "tiny.onnx").write_bytes(data[: len(data) * 2 // 3])
    stderr = _user_error("check", str(write_experiment()))
    assert "tiny.onnx is not a valid ONNX model" in stderr


def test_missing_dataset(write_experiment: WriteExperiment) -> None:
    path = write_experiment(problem={**TINY_PROBLEM, "dataset": "absent.npz"})
    assert "absent.npz does not exist" in _user_error("check", str(path))


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"x": np.zeros((5, 4), np.float32)}, "no array named 'input'"),
        ({"input": np.zeros((5, 4), np.float64)}, "convert it with .astype(numpy.float32)"),
        ({"input": np.zeros((5, 2, 2), np.float32)}, "rank 3"),
        ({"input": np.zeros((5, 7), np.float32)}, "size 7 on axis 1"),
    ],
    ids=["name", "dtype", "rank", "dim"],
)
def test_dataset_does_not_match_the_model(
    write_experiment: WriteExperiment,
    user_files: Path,
    arrays: dict[str, Any],
    expected: str,
) -> None:
    np.savez(user_files / "data.npz", **arrays)
    stderr = _user_error("check", str(write_experiment()))
    assert f"dataset {user_files / 'data.npz'} does not match the model" in stderr
    assert expected in stderr


def test_mismatch_message_keeps_symbolic_dim_names(
    write_experiment: WriteExperiment, user_files: Path, tiny_model_writer: Callable[..., Path]
) -> None:
    tiny_model_writer(user_files / "tiny.onnx", batch="batch")
    np.savez(user_files / "data.npz", input=np.zeros((5, 7), np.float32))
    stderr = _user_error("check", str(write_experiment()))
    # "[batch, 4]" must be printed as text, not eaten as console markup
    assert "model input input: float32[batch, 4] needs 4" in stderr


def test_message_with_markup_like_path_is_printed(user_files: Path) -> None:
    folder = user_files / "[/odd]"
    stderr = _user_error("check", str(folder / "e.yaml"))
    assert "[/odd]" in stderr
    assert "no such experiment file" in stderr


def test_threshold_out_of_range(write_experiment: WriteExperiment) -> None:
    path = write_experiment(semantic_preservation={"distance": "topk", "threshold": 1.0})
    stderr = _user_error("check", str(path))
    assert "semantic_preservation" in stderr
    assert "out of range for distance 'topk'" in stderr


def test_unknown_toolchain_option_value(write_experiment: WriteExperiment) -> None:
    path = write_experiment(
        toolchain={"name": "onnxruntime", "config": {"graph_optimization": "maximum"}}
    )
    stderr = _user_error("check", str(path))
    assert "invalid configuration for toolchain 'onnxruntime'" in stderr
    assert "toolchain.config.graph_optimization" in stderr
    assert "'maximum'" in stderr
    assert "'all'" in stderr


def test_unknown_toolchain_option_key(write_experiment: WriteExperiment) -> None:
    path = write_experiment(toolchain={"name": "onnxruntime", "config": {"quantisation": "none"}})
    stderr = _user_error("check", str(path))
    assert "toolchain.config.quantisation: unknown key" in stderr
    assert "did you mean 'quantization'?" in stderr


def test_unknown_probe(write_experiment: WriteExperiment) -> None:
    path = write_experiment(measurement={"profile": "quick", "probes": ["peak-rss", "peak_rss2"]})
    stderr = _user_error("check", str(path))
    assert "measurement.probes: unknown probe 'peak_rss2'" in stderr
    assert "known probes: cpu-time, peak-rss, thermal" in stderr


def test_unusable_cpu_affinity(write_experiment: WriteExperiment) -> None:
    path = write_experiment(environment={"cpu_affinity": [100000]})
    stderr = _user_error("check", str(path))
    assert "[error] cpu-affinity" in stderr


def test_run_validates_every_file_before_running_any(
    write_experiment: WriteExperiment, user_files: Path
) -> None:
    good = write_experiment("good.yaml")
    bad = user_files / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    out = user_files / "out"
    stderr = _user_error("run", str(good), str(bad), "--out", str(out), "--json")
    assert "malformed YAML" in stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"toolchain": {"name": "onnxruntim"}},
        {"toolchain": {"name": "onnxruntime", "config": {"graph_optimization": "maximum"}}},
        {"measurement": {"probes": ["nope"]}},
        {"problem": {**TINY_PROBLEM, "model": "./absent.onnx"}},
    ],
    ids=["toolchain", "config", "probe", "model"],
)
def test_run_bad_input_exits_2_without_a_record(
    write_experiment: WriteExperiment, user_files: Path, overrides: dict[str, Any]
) -> None:
    out = user_files / "out"
    _user_error("run", str(write_experiment(**overrides)), "--json", "--out", str(out))
    assert not (out / "runs").exists()


def test_console_script_exit_code(user_files: Path, zoo_home: Path) -> None:
    script = Path(sys.executable).parent / "deploybench"
    if not script.exists():
        found = shutil.which("deploybench")
        if found is None:
            pytest.skip("the deploybench console script is not installed")
        script = Path(found)
    spec = user_files / "bad.yaml"
    spec.write_text("name: x\nproblem: {model: zoo:digits-mlp, dataset: zoo:digits}\n")
    env = {"DEPLOYBENCH_HOME": str(zoo_home), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    result = subprocess.run(
        [str(script), "check", str(spec)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "toolchain: required field is missing" in result.stderr
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, env=env, timeout=120
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"deploybench {deploybench.__version__}"
