"""The contract every toolchain passes. Subclass :class:`ToolchainContract` in a test module
and provide three fixtures:

- ``toolchain``: an instance of the toolchain under test;
- ``problem``: a :class:`~deploybench.problems.ResolvedProblem` it can build;
- ``config``: a configuration mapping (parametrize it to cover the options).

Two fixtures have defaults that a subclass may override:

- ``tolerance``: how close the deployed outputs must stay to the reference's
  (:func:`default_tolerance`: :data:`FP32_TOLERANCE`, or :data:`REDUCED_PRECISION_TOLERANCE`
  for a config that asks for int8 or a 16-bit float type);
- ``reference_toolchain``: the toolchain whose ``reference_config()`` gives the reference
  outputs (:data:`REFERENCE_TOOLCHAINS`: ONNX Runtime for ONNX problems, PyTorch eager for
  PyTorch problems, scikit-learn for sklearn problems), as the toolchain guides state their
  tolerances against those.

Each deployable is built once per test class and (toolchain, problem, config), so adding
contract tests does not add builds.

Requires pytest (it is a test-time helper).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploybench.errors import PluginError
from deploybench.harness.worker import _import_factory, functional_pass, timing_batches
from deploybench.hashing import sha256_file
from deploybench.metrics.semantic import SemanticPreservationResult, semantic_preservation
from deploybench.problems.resolved import ResolvedProblem
from deploybench.runner.functional import accuracy_metrics
from deploybench.runner.preparation import load_toolchain
from deploybench.spec.problem import TaskKind
from deploybench.spec.semantic import Distance, SemanticPreservationSpec
from deploybench.targets.local import LocalCpuTarget
from deploybench.toolchains.base import MANIFEST_NAME, Deployable, SessionOptions, Toolchain

__all__ = [
    "FP32_TOLERANCE",
    "REDUCED_PRECISION_TOLERANCE",
    "REFERENCE_TOOLCHAINS",
    "DeployableCache",
    "Tolerance",
    "ToolchainContract",
    "default_tolerance",
]

# Confidence of the intervals in the semantic-preservation results (the runner's default).
_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Tolerance:
    """How far a deployed model's outputs may move from the reference outputs.

    Attributes:
        max_abs: largest absolute difference of any output element, or None when the outputs
            are expected to move (quantized or 16-bit configs) and only labels are compared.
        min_label_agreement: least share of samples whose arg-max label is the reference's.
        max_accuracy_drop: largest accuracy loss (reference minus deployed, in [0, 1]) on
            the dataset's labels, or None when not checked. A gain always passes.
        samples: how many dataset samples are compared (None: all of them).
    """

    max_abs: float | None
    min_label_agreement: float
    max_accuracy_drop: float | None = None
    samples: int | None = None


# The numbers the toolchain guides document and their tests assert on the digits problems:
# fp32 logits within 1e-4 (max abs) of the reference with identical labels (ONNX Runtime,
# OpenVINO, TVM and PyTorch guides); int8 keeps >= 95 % of the labels (ONNX Runtime static
# int8, tests/runner/test_runner_onnxruntime.py; OpenVINO documents 97 %) and loses at most 3
# accuracy points (OpenVINO and PyTorch guides, ONNX Runtime dynamic int8 test).
FP32_TOLERANCE = Tolerance(max_abs=1e-4, min_label_agreement=1.0)
REDUCED_PRECISION_TOLERANCE = Tolerance(
    max_abs=None, min_label_agreement=0.95, max_accuracy_drop=0.03
)
# Config values that ask for arithmetic below fp32.
_REDUCED_PRECISION_WORDS = ("int8", "bf16", "f16", "fp16")
# Problem model format -> the toolchain that computes its reference outputs.
REFERENCE_TOOLCHAINS = {"onnx": "onnxruntime", "torch": "pytorch", "sklearn": "sklearn"}


def default_tolerance(config: dict[str, Any]) -> Tolerance:
    """:data:`REDUCED_PRECISION_TOLERANCE` when a config value names int8 or a 16-bit float
    type (``quantization: static-int8``, ``precision: bf16``...), else :data:`FP32_TOLERANCE`.
    """
    values = [str(value).lower() for value in config.values()]
    if any(word in value for value in values for word in _REDUCED_PRECISION_WORDS):
        return REDUCED_PRECISION_TOLERANCE
    return FP32_TOLERANCE


@dataclass
class DeployableCache:
    """Deployables and output arrays built once and shared by the tests of one class.

    The tests only read what they get, so sharing is safe; keys name the toolchain, the
    problem's files and the config.
    """

    root: Path
    deployables: dict[str, Deployable] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @staticmethod
    def key(toolchain: Toolchain, problem: ResolvedProblem, config: dict[str, Any]) -> str:
        """A stable key of (toolchain, problem, config)."""
        parts = [toolchain.name, problem.model_sha256, problem.dataset_sha256]
        return json.dumps([*parts, config], sort_keys=True, default=str)

    def deployable(
        self, toolchain: Toolchain, problem: ResolvedProblem, config: dict[str, Any]
    ) -> Deployable:
        """Build on first request, then return the same deployable."""
        key = self.key(toolchain, problem, config)
        if key not in self.deployables:
            workdir = self.root / f"build-{len(self.deployables)}"
            self.deployables[key] = toolchain.build(
                problem, toolchain.parse_config(config), workdir
            )
        return self.deployables[key]

    def outputs_of(
        self,
        toolchain: Toolchain,
        problem: ResolvedProblem,
        config: dict[str, Any],
        samples: int | None,
        batch_size: int,
    ) -> np.ndarray:
        """First output of the deployable on the first ``samples`` samples, one thread,
        ``batch_size`` samples per call, collected as the measurement worker's functional
        pass collects it."""
        key = json.dumps([self.key(toolchain, problem, config), samples])
        if key not in self.outputs:
            deployable = self.deployable(toolchain, problem, config)
            if deployable.session_factory is None:
                pytest.skip("deployable is not a Python session (firmware toolchains)")
            session = _import_factory(deployable.session_factory)(
                deployable, SessionOptions(threads=1)
            )
            try:
                n = problem.n_samples if samples is None else min(samples, problem.n_samples)
                collected = functional_pass(session, problem.load_inputs(limit=n), batch_size, n)
            finally:
                session.close()
            self.outputs[key] = collected["0"]
        return self.outputs[key]


class ToolchainContract:
    """Behaviour shared by all toolchains (see the module docstring for the fixtures)."""

    # A classmethod: pytest deprecates class-scoped fixtures that are instance methods.
    @pytest.fixture(scope="class")
    @classmethod
    def deployable_cache(cls, tmp_path_factory: pytest.TempPathFactory) -> DeployableCache:
        """Builds shared by the tests of this class."""
        return DeployableCache(tmp_path_factory.mktemp("contract"))

    @pytest.fixture
    def deployable(
        self,
        toolchain: Toolchain,
        problem: ResolvedProblem,
        config: dict[str, Any],
        deployable_cache: DeployableCache,
    ) -> Deployable:
        """The deployable of (toolchain, problem, config), built once per test class."""
        return deployable_cache.deployable(toolchain, problem, config)

    @pytest.fixture
    def tolerance(self, config: dict[str, Any]) -> Tolerance:
        """Allowed distance to the reference outputs; see :func:`default_tolerance`."""
        return default_tolerance(config)

    @pytest.fixture
    def functional_batch_size(self) -> int:
        """Samples per session call when comparing outputs. 2, as in the session test, suits
        deployables compiled for a fixed batch of 2 (whose declared inputs may still show a
        symbolic batch); raise it for large datasets on flexible deployables."""
        return 2

    @pytest.fixture
    def reference_toolchain(self, problem: ResolvedProblem) -> Toolchain:
        """The toolchain whose reference config gives the reference outputs."""
        name = REFERENCE_TOOLCHAINS.get(problem.model_format)
        if name is None:
            pytest.skip(f"no reference toolchain for {problem.model_format} models")
        try:
            return load_toolchain(name)
        except PluginError as exc:
            pytest.skip(f"the reference toolchain is not available: {exc}")

    def test_describe_is_complete(self, toolchain: Toolchain) -> None:
        """Name, summary, input formats and a JSON Schema of the config."""
        description = toolchain.describe()
        assert description.name == toolchain.name
        assert description.summary
        assert description.input_formats
        assert description.config_schema.get("type") == "object"

    def test_availability_does_not_import_the_runtime(self, toolchain: Toolchain) -> None:
        """Listing plugins must stay cheap: availability() imports no runtime."""
        module = type(toolchain).__module__
        code = (
            "import sys, importlib; "
            f"m = importlib.import_module({module!r}); "
            f"cls = getattr(m, {type(toolchain).__name__!r}); cls.availability(); "
            "heavy = [n for n in ('onnxruntime', 'torch', 'openvino', 'tvm') if n in sys.modules]; "
            "print(','.join(heavy))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "", f"imported at availability(): {out.stdout.strip()}"

    def test_unknown_config_key_is_refused(self, toolchain: Toolchain) -> None:
        """A typo in the config names the field and the allowed keys."""
        with pytest.raises(PluginError, match=r"toolchain\.config\.no_such_option"):
            toolchain.parse_config({"no_such_option": 1})

    def test_reference_config_is_valid(self, toolchain: Toolchain) -> None:
        """The reference config validates against the toolchain's own model."""
        reference = toolchain.reference_config()
        assert isinstance(reference, toolchain.config_model)
        toolchain.parse_config(reference.model_dump())

    def test_check_accepts_a_supported_problem(
        self, toolchain: Toolchain, problem: ResolvedProblem, config: dict[str, Any]
    ) -> None:
        """No error findings for a problem the toolchain supports."""
        findings = toolchain.check(
            problem, LocalCpuTarget().describe(), toolchain.parse_config(config)
        )
        assert [f for f in findings if f.severity == "error"] == []

    def test_build_manifest_matches_files(
        self, toolchain: Toolchain, deployable: Deployable
    ) -> None:
        """Every declared file exists with its sha256; the manifest round-trips."""
        assert (deployable.root / deployable.entry).is_file()
        for item in deployable.files:
            assert sha256_file(deployable.root / item.path) == item.sha256
        manifest = json.loads((deployable.root / MANIFEST_NAME).read_text())
        assert manifest["toolchain"] == toolchain.name
        assert Deployable.read(deployable.root) == deployable
        deployable.verify()
        entry_size = (deployable.root / deployable.entry).stat().st_size
        all_files = sum(item.size for item in deployable.files)
        assert entry_size <= deployable.deployed_size_bytes <= max(entry_size, all_files)

    def test_steps_record_tools_versions_and_hashes(self, deployable: Deployable) -> None:
        """Each step names its tool and version, hashes inputs and outputs, and is timed."""
        assert deployable.steps
        assert deployable.steps[0].inputs, "the first step must hash the input model"
        for step in deployable.steps:
            assert step.tool and step.version
            assert step.seconds >= 0
            for digest in [*step.inputs.values(), *step.outputs.values()]:
                assert len(digest) == 64

    def test_session_runs_and_matches_declared_outputs(
        self, problem: ResolvedProblem, deployable: Deployable
    ) -> None:
        """The session factory loads the deployable and returns the declared outputs."""
        if deployable.session_factory is None:
            pytest.skip("deployable is not a Python session (firmware toolchains)")
        factory = _import_factory(deployable.session_factory)
        session = factory(deployable, SessionOptions(threads=1))
        batch = timing_batches(problem.load_inputs(limit=4), batch_size=2, limit=1)[0]
        outputs = session.run(session.prepare(batch))
        session.synchronize()
        assert len(outputs) == len(deployable.outputs)
        for output, spec in zip(outputs, deployable.outputs, strict=True):
            array = np.asarray(output)
            assert array.shape[0] == 2
            assert str(array.dtype) == spec.dtype
        assert isinstance(session.info(), dict)
        session.close()

    def test_outputs_stay_within_tolerance_of_the_reference(
        self,
        toolchain: Toolchain,
        problem: ResolvedProblem,
        config: dict[str, Any],
        tolerance: Tolerance,
        reference_toolchain: Toolchain,
        deployable_cache: DeployableCache,
        functional_batch_size: int,
    ) -> None:
        """Semantic preservation against the reference run, measured as a run measures it.

        fp32: every output element within ``tolerance.max_abs`` of the reference.
        Classification, always: at least ``min_label_agreement`` of the labels unchanged;
        reduced precision: the accuracy drop (reference accuracy minus deployed accuracy, as
        the run record reports them) is computed and at most ``max_accuracy_drop``.
        """
        reference_config = reference_toolchain.reference_config().model_dump(mode="json")
        reference = deployable_cache.outputs_of(
            reference_toolchain, problem, reference_config, tolerance.samples, functional_batch_size
        )
        deployed = deployable_cache.outputs_of(
            toolchain, problem, config, tolerance.samples, functional_batch_size
        )
        assert deployed.shape == reference.shape
        where = f"{toolchain.name} {config} against {reference_toolchain.name} {reference_config}"
        if tolerance.max_abs is not None:
            close = _preservation(deployed, reference, Distance.MAX_ABS, tolerance.max_abs)
            assert close.ratio == 1.0, (
                f"{where}: {close.n - close.identical} of {close.n} samples differ by more "
                f"than {tolerance.max_abs} (largest difference {close.max_distance})"
            )
        if problem.task is not TaskKind.CLASSIFICATION:
            return  # labels and accuracy are classification measures
        labels = _preservation(deployed, reference, Distance.LABEL, 0.0)
        assert labels.ratio >= tolerance.min_label_agreement, (
            f"{where}: label agreement {labels.ratio:.4f} < {tolerance.min_label_agreement}"
        )
        if tolerance.max_accuracy_drop is not None:
            drop = _accuracy(problem, reference) - _accuracy(problem, deployed)
            assert drop <= tolerance.max_accuracy_drop, (
                f"{where}: accuracy drop {drop:.4f} > {tolerance.max_accuracy_drop}"
            )


def _preservation(
    deployed: np.ndarray, reference: np.ndarray, distance: Distance, threshold: float
) -> SemanticPreservationResult:
    spec = SemanticPreservationSpec(distance=distance, threshold=threshold)
    return semantic_preservation(deployed, reference, spec, confidence=_CONFIDENCE)


def _accuracy(problem: ResolvedProblem, outputs: np.ndarray) -> float:
    """Accuracy of ``outputs`` as the run record reports it; fails when it cannot."""
    metrics = accuracy_metrics(problem, outputs, _CONFIDENCE)
    reported = metrics.get("accuracy", {})
    assert "accuracy" in reported, f"no accuracy is reported for this problem: {metrics}"
    return float(reported["accuracy"])
