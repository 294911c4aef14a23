"""Generated C on the simulator targets, end to end: cgen builds, the target cross-compiles,
boots QEMU per pass, reads the outputs back and counts instructions.

Real cross-compilers and QEMU (CI installs them; nothing here is skipped for want of them).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploybench.errors import CompatibilityError, PluginError
from deploybench.runner import run_experiment
from deploybench.runner.preparation import load_target, prepare_experiment
from deploybench.spec.measurement import MeasurementPlan
from deploybench.targets.aarch64_linux import QemuAarch64LinuxTarget
from deploybench.targets.base import ExecutionRequest, FailureKind
from deploybench.targets.cortex_m import QemuCortexMTarget
from deploybench.testing.experiments import make_experiment
from deploybench.toolchains.base import C_SOURCE, Deployable, DeployableFile

pytestmark = pytest.mark.slow

# Functional samples of the digits runs: enough for a 0.99 agreement bound to mean something
# (one label in 120 may move), few enough to keep each run at a few seconds.
SAMPLES = 120
TARGETS: dict[str, dict[str, Any]] = {
    "m4f": {"name": "qemu-cortex-m", "config": {"board": "mps2-an386"}},
    "lm3s6965evb": {"name": "qemu-cortex-m", "config": {"board": "lm3s6965evb"}},
    "aarch64": {"name": "qemu-aarch64-linux"},
}


def _experiment(model: str, precision: str, target: dict[str, Any]) -> Any:
    return make_experiment(
        model=model,
        toolchain="cgen",
        config={"precision": precision, "calibration_samples": 32} if precision == "int8" else {},
        target=target,
        measurement={"accuracy_samples": SAMPLES, "repetitions": 2},
    )


def _size_of(elf: Path, tool: str) -> tuple[int, int, int]:
    """text, data, bss as the binutils ``size`` tool prints them (Berkeley format)."""
    out = subprocess.run([tool, str(elf)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in out.stdout.splitlines()[1].split()[:3])
    return text, data, bss


# Every pair of values of two dimensions (model and precision, model and target, precision and
# target) in six runs instead of the twelve of the full product: a failure that needs one
# particular pair still shows, and the suite keeps to its time budget (each run boots QEMU 4
# times, 3.5-11 s on two cores).
PAIRWISE = [
    ("zoo:digits-mlp", "fp32", "aarch64"),
    ("zoo:digits-cnn", "int8", "aarch64"),
    ("zoo:digits-mlp", "int8", "lm3s6965evb"),
    ("zoo:digits-cnn", "fp32", "lm3s6965evb"),
    ("zoo:digits-mlp", "fp32", "m4f"),
    ("zoo:digits-cnn", "int8", "m4f"),
]


def test_the_runs_cover_every_pair_of_values() -> None:
    models, precisions, targets = ({run[i] for run in PAIRWISE} for i in range(3))
    assert targets == set(TARGETS)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        values = (models, precisions, targets)
        wanted = {(x, y) for x in values[a] for y in values[b]}
        assert {(run[a], run[b]) for run in PAIRWISE} == wanted


@pytest.mark.parametrize(("model", "precision", "target"), PAIRWISE)
def test_digits_models_on_the_simulators(
    model: str, precision: str, target: str, tmp_path: Path
) -> None:
    outcome = run_experiment(_experiment(model, precision, TARGETS[target]), workdir=tmp_path)
    record = outcome.record
    assert record.status == "succeeded", record.error
    assert record.provenance == "simulated"
    metrics = record.metrics

    # Semantic preservation against ONNX Runtime on the host (the reference run).
    agreement = metrics["semantic_preservation"]["ratio"]
    assert metrics["semantic_preservation"]["n"] == SAMPLES
    assert agreement >= (0.99 if precision == "fp32" else 0.95), agreement
    drop = metrics["reference_accuracy"]["accuracy"] - metrics["accuracy"]["accuracy"]
    assert drop <= (0.01 if precision == "fp32" else 0.03)

    # Instructions: exact, identical across the two counted boots.
    boots = record.repetitions
    assert len(boots) == 2
    assert boots[0]["per_inference"] == boots[1]["per_inference"] > 1000
    assert metrics["instructions"]["per_inference"] == boots[0]["per_inference"]
    assert record.validity.verdict == "valid", record.validity.reasons

    # Flash and RAM equal what binutils' size says about the same ELF.
    footprint = metrics["footprint"]
    elf = next((tmp_path / "target" / "firmware").glob("*.elf"))
    tool = "aarch64-linux-gnu-size" if target == "aarch64" else "arm-none-eabi-size"
    text, data, bss = _size_of(elf, tool)
    assert footprint["flash_bytes"] == text + data
    assert footprint["ram_bytes"] == data + bss
    # A leaf dbm_run may keep everything in registers (0 bytes on aarch64 -O2).
    assert footprint["stack_bytes"] > 0
    assert footprint["stack_bytes"] >= footprint["model_stack_bytes"] >= 0
    assert footprint["model_stack_path"][0] == "dbm_run"
    assert footprint["arena_bytes"] > 0 and footprint["weights_bytes"] > 0

    # Latency is a simulated estimate on the boards, unavailable (with the reason) on aarch64.
    if target == "aarch64":
        assert "no cycle model" in metrics["latency_ms"]["unavailable"]
        assert "unavailable" in metrics["cycles"]
    else:
        assert metrics["latency_ms"]["provenance"] == "simulated"
        assert metrics["cycles"]["per_inference"] > boots[0]["per_inference"] * 0.5
        regions = {region["name"]: region for region in footprint["regions"]}
        assert regions["flash"]["used_bytes"] == footprint["flash_bytes"]
        assert 0 < regions["ram"]["share"] < 1
    steps = [step.name for step in record.steps]
    assert steps[-1] == "cross-compile" and "generate-c" in steps
    # Every boot's command line and output is in the run's log: functional, baseline, counted.
    log = (tmp_path / "run.log").read_text()
    for boot in ("functional", "baseline", "boot-0", "boot-1"):
        assert f"==== target: {boot} ====" in log
    if precision == "int8":
        assert "quantize" in steps


def test_an_oversized_model_is_refused_on_the_small_board() -> None:
    experiment = make_experiment(
        model="zoo:resnet18-wd4-digits32",
        dataset="zoo:digits32",
        toolchain="cgen",
        target={"name": "qemu-cortex-m", "config": {"board": "lm3s6965evb"}},
    )
    with pytest.raises(CompatibilityError) as caught:
        prepare_experiment(experiment)
    message = str(caught.value)
    assert "does-not-fit" in message and "lm3s6965evb" in message
    assert "262144 bytes" in message  # the board's flash, with the model's need beside it


def test_an_unknown_board_lists_the_boards() -> None:
    with pytest.raises(PluginError) as caught:
        load_target("qemu-cortex-m", {"board": "stm32f4-discovery"})
    message = str(caught.value)
    assert "target.config.board" in message and "stm32f4-discovery" in message
    for board in ("mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "lm3s6965evb"):
        assert board in message


def test_a_cpu_the_board_cannot_run_is_refused() -> None:
    experiment = make_experiment(
        toolchain="cgen",
        config={"cpu": "cortex-m7"},
        target={"name": "qemu-cortex-m", "config": {"board": "mps2-an385"}},
    )
    with pytest.raises(CompatibilityError, match=r"cpu-mismatch.*cortex-m7.*cortex-m3"):
        prepare_experiment(experiment)


def test_missing_cross_tools_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    arm, linux = QemuCortexMTarget.availability(), QemuAarch64LinuxTarget.availability()
    assert not arm.available and not linux.available
    assert "apt-get install gcc-arm-none-eabi" in str(arm.reason)
    assert "qemu-user" in str(linux.reason)


def _hand_written_deployable(root: Path, body: str) -> Deployable:
    """A c-source deployable whose model is ``body`` (a hang or a fault)."""
    source_dir = root / "c"
    source_dir.mkdir(parents=True)
    (source_dir / "model.h").write_text(
        "#define DBM_INPUT_SIZE 64\n#define DBM_OUTPUT_SIZE 10\n#define DBM_ARENA_BYTES 0\n"
        "int dbm_run(const float *input, float *output);\n"
    )
    (source_dir / "model.c").write_text(
        '#include "model.h"\nint dbm_run(const float *input, float *output) {\n'
        f"  (void)input; (void)output;\n  {body}\n  return 0;\n}}\n"
    )
    from deploybench.problems.tensors import TensorSpec

    return Deployable(
        toolchain="cgen",
        kind=C_SOURCE,
        entry="c/model.c",
        files=[DeployableFile.of(root, source_dir / "model.c", "source")],
        session_config={
            "sources": ["c/model.c"],
            "include_dir": "c",
            "input_size": 64,
            "output_size": 10,
            "output_shape": [1, 10],
            "compile": {},
        },
        inputs=[TensorSpec(name="input", dtype="float32", shape=["N", 64])],
        outputs=[TensorSpec(name="output", dtype="float32", shape=["N", 10])],
        steps=[],
        tool_versions={},
        root=root,
    )


def _execute(deployable: Deployable, tmp_path: Path, timeout: float) -> Any:
    from deploybench.spec.environment import EnvironmentSpec
    from deploybench.zoo import build_dataset

    plan = MeasurementPlan.model_validate({"profile": "quick", "timeout": timeout}).resolved()
    return QemuCortexMTarget().execute(
        ExecutionRequest(
            deployable=deployable,
            inputs_path=build_dataset("digits").path,
            environment=EnvironmentSpec(),
            plan=plan,
            functional_samples=4,
            workdir=tmp_path / "run",
        )
    )


def test_a_hanging_firmware_is_killed_by_the_watchdog(tmp_path: Path) -> None:
    deployable = _hand_written_deployable(tmp_path / "hang", "for (;;) { }")
    raw = _execute(deployable, tmp_path, timeout=3.0)
    assert raw.failure is not None
    assert raw.failure.kind is FailureKind.TIMEOUT
    assert "watchdog" in raw.failure.message and raw.failure.phase == "functional"
    assert raw.failure.log_path is not None and raw.failure.log_path.is_file()


def test_a_faulting_firmware_is_reported_with_its_fault(tmp_path: Path) -> None:
    # A store to an address nothing answers: a bus fault on the MPS2 memory map.
    body = "*(volatile unsigned *)0xEFFFFFF0u = 1u;"
    deployable = _hand_written_deployable(tmp_path / "fault", body)
    raw = _execute(deployable, tmp_path, timeout=30.0)
    assert raw.failure is not None
    assert raw.failure.kind is FailureKind.CRASH
    assert "faulted" in raw.failure.message and "pc=0x" in raw.failure.message
    assert "Fault" in raw.failure.message


def test_functional_outputs_match_the_host_build(tmp_path: Path) -> None:
    """The same generated C gives the same outputs on the board and through the host
    library (bit-exactness is not expected: soft-float libm versus glibc)."""
    outcome = run_experiment(
        _experiment("zoo:digits-mlp", "fp32", TARGETS["m4f"]), workdir=tmp_path / "board"
    )
    board = np.load(outcome.workdir / "target" / "functional" / "outputs.npz")
    host = run_experiment(
        _experiment("zoo:digits-mlp", "fp32", {"name": "local"}), workdir=tmp_path / "host"
    )
    assert host.record.status == "succeeded"
    host_outputs = np.load(host.workdir / "target" / "functional" / "outputs.npz")
    for name in board.files:
        np.testing.assert_allclose(board[name], host_outputs[name], atol=1e-4)


def test_code_for_a_smaller_core_runs_on_a_bigger_board(tmp_path: Path) -> None:
    """cortex-m0 code (ARMv6-M, soft float) on the M4F board: same answers, more
    instructions than the board's own hard-float build would need."""
    experiment = make_experiment(
        toolchain="cgen",
        config={"cpu": "cortex-m0"},
        target=TARGETS["m4f"],
        measurement={"accuracy_samples": 30, "repetitions": 1},
    )
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.status == "succeeded", record.error
    assert record.metrics["semantic_preservation"]["ratio"] == 1.0
    cross = next(step for step in record.steps if step.name == "cross-compile")
    assert cross.parameters["cpu"] == "cortex-m0"
    assert "-mcpu=cortex-m0" in cross.log and "-mfloat-abi=soft" in cross.log


def test_a_hard_float_abi_on_a_board_without_fpu_is_refused() -> None:
    experiment = make_experiment(
        toolchain="cgen",
        config={"float_abi": "hard"},
        target={"name": "qemu-cortex-m", "config": {"board": "lm3s6965evb"}},
    )
    with pytest.raises(CompatibilityError, match=r"no-fpu.*lm3s6965evb"):
        prepare_experiment(experiment)


def test_a_tree_ensemble_on_the_small_board(tmp_path: Path) -> None:
    """A scikit-learn forest through emlearn on the lm3s6965evb: same labels as scikit-learn."""
    experiment = make_experiment(
        model="zoo:digits-forest",
        toolchain="cgen",
        target={"name": "qemu-cortex-m", "config": {"board": "lm3s6965evb"}},
        measurement={"accuracy_samples": 60, "repetitions": 2},
    )
    record = run_experiment(experiment, workdir=tmp_path).record
    assert record.status == "succeeded", record.error
    assert record.reference["toolchain"] == "sklearn"
    assert record.metrics["semantic_preservation"]["ratio"] == 1.0
    assert record.metrics["footprint"]["flash_bytes"] < 256 * 1024
    assert record.validity.verdict == "valid"
