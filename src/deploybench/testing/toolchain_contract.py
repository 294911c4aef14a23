"""The contract every toolchain passes. Subclass :class:`ToolchainContract` in a test module
and provide three fixtures:

- ``toolchain``: an instance of the toolchain under test;
- ``problem``: a :class:`~deploybench.problems.ResolvedProblem` it can build;
- ``config``: a configuration mapping (parametrize it to cover the options).

Requires pytest (it is a test-time helper).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploybench.errors import PluginError
from deploybench.harness.worker import _import_factory, timing_batches
from deploybench.hashing import sha256_file
from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.local import LocalCpuTarget
from deploybench.toolchains.base import MANIFEST_NAME, Deployable, SessionOptions, Toolchain


class ToolchainContract:
    """Behaviour shared by all toolchains (see the module docstring for the fixtures)."""

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

    def _build(
        self, toolchain: Toolchain, problem: ResolvedProblem, config: dict[str, Any], root: Path
    ) -> Deployable:
        return toolchain.build(problem, toolchain.parse_config(config), root / "build")

    def test_build_manifest_matches_files(
        self,
        toolchain: Toolchain,
        problem: ResolvedProblem,
        config: dict[str, Any],
        tmp_path: Path,
    ) -> None:
        """Every declared file exists with its sha256; the manifest round-trips."""
        deployable = self._build(toolchain, problem, config, tmp_path)
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

    def test_steps_record_tools_versions_and_hashes(
        self,
        toolchain: Toolchain,
        problem: ResolvedProblem,
        config: dict[str, Any],
        tmp_path: Path,
    ) -> None:
        """Each step names its tool and version, hashes inputs and outputs, and is timed."""
        deployable = self._build(toolchain, problem, config, tmp_path)
        assert deployable.steps
        assert deployable.steps[0].inputs, "the first step must hash the input model"
        for step in deployable.steps:
            assert step.tool and step.version
            assert step.seconds >= 0
            for digest in [*step.inputs.values(), *step.outputs.values()]:
                assert len(digest) == 64

    def test_session_runs_and_matches_declared_outputs(
        self,
        toolchain: Toolchain,
        problem: ResolvedProblem,
        config: dict[str, Any],
        tmp_path: Path,
    ) -> None:
        """The session factory loads the deployable and returns the declared outputs."""
        deployable = self._build(toolchain, problem, config, tmp_path)
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
