"""The toolchain contract: check a problem, build a deployable, describe itself.

A toolchain turns a resolved problem into a :class:`Deployable`: a folder of files plus a
manifest (what was produced, by which step, with which tool versions, the sha256 of each
file). Targets execute deployables; they never call the toolchain again. For runtimes driven
from Python the deployable names a *session factory* that the measurement worker imports in
a fresh process; for firmware the deployable is an ELF that a simulator target boots.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploybench.errors import DeploybenchError, PluginError
from deploybench.hashing import sha256_file
from deploybench.plugins.availability import Availability
from deploybench.problems.tensors import TensorSpec
from deploybench.spec.loading import format_validation_error

if TYPE_CHECKING:
    import numpy as np

    from deploybench.problems.resolved import ResolvedProblem
    from deploybench.targets.base import TargetInfo

MANIFEST_NAME = "deployable.json"
# Deployable kind of generated C sources (cgen): the host runs them through the deployable's
# session factory, simulator targets cross-compile them.
C_SOURCE = "c-source"


class Severity(StrEnum):
    """How bad a finding is: errors stop the experiment before anything runs."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Finding(BaseModel):
    """One compatibility fact found before running (REQ-00024, REQ-00025)."""

    model_config = ConfigDict(frozen=True)

    severity: Severity
    code: str = Field(description="Stable identifier, e.g. 'unsupported-op'.")
    message: str = Field(description="What is wrong, with the numbers.")
    subject: str | None = Field(default=None, description="Operator, input or file concerned.")
    fix: str | None = Field(default=None, description="What the user can do about it.")

    def render(self) -> str:
        """One line for terminals and logs."""
        text = f"[{self.severity.value}] {self.code}: {self.message}"
        return f"{text} Fix: {self.fix}" if self.fix else text


class StepRecord(BaseModel):
    """One logged step of a deployment pipeline (convert, optimize, quantize, ...)."""

    model_config = ConfigDict(frozen=True)

    name: str
    tool: str
    version: str
    seconds: float
    inputs: dict[str, str] = Field(description="Input file name -> sha256.")
    outputs: dict[str, str] = Field(description="Output file name -> sha256.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    log: str = ""


class DeployableFile(BaseModel):
    """A file of a deployable, relative to its folder."""

    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
    size: int
    role: str = Field(description="model, optimized-model, quantized-model, firmware, ...")

    @classmethod
    def of(cls, root: Path, path: Path, role: str) -> DeployableFile:
        """Describe ``path`` (inside the deployable folder ``root``) with its hash and size."""
        return cls(
            path=path.relative_to(root).as_posix(),
            sha256=sha256_file(path),
            size=path.stat().st_size,
            role=role,
        )


class Deployable(BaseModel):
    """What a toolchain produced: files in ``root`` plus the manifest describing them."""

    model_config = ConfigDict(frozen=True)

    toolchain: str
    kind: str = Field(description="How it executes: 'python-session', 'firmware-elf', ...")
    session_factory: str | None = Field(
        default=None, description="'module:function' opening a Session (python-session kind)."
    )
    entry: str = Field(description="Relative path of the main file.")
    files: list[DeployableFile]
    session_config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    steps: list[StepRecord]
    tool_versions: dict[str, str]
    workflow: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The deployment workflow that ran (explicit or default): each step's "
        "configuration, in order.",
    )
    root: Path = Field(exclude=True)

    @property
    def entry_path(self) -> Path:
        """Absolute path of the main file."""
        return self.root / self.entry

    @property
    def deployed_size_bytes(self) -> int:
        """Bytes of what runs: the entry file and its companions (ONNX external data
        ``model.onnx.data``, OpenVINO weights ``model.bin`` beside ``model.xml``); never the
        intermediate models a pipeline also keeps."""
        entry = Path(self.entry)
        total = self.entry_path.stat().st_size
        for item in self.files:
            path = Path(item.path)
            if path == entry:
                continue
            if path.parent == entry.parent and (
                path.name.startswith(entry.name + ".")
                or (entry.suffix == ".xml" and path.name == entry.stem + ".bin")
            ):
                total += (self.root / path).stat().st_size
        return total

    def write_manifest(self) -> Path:
        """Write the manifest next to the files and return its path."""
        path = self.root / MANIFEST_NAME
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path

    @classmethod
    def read(cls, root: Path) -> Deployable:
        """Load a deployable folder written by :meth:`write_manifest`."""
        data = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
        return cls.model_validate({**data, "root": root})

    def verify(self) -> None:
        """Check every file against its sha256; raise when one was altered or is missing."""
        for item in self.files:
            path = self.root / item.path
            if not path.is_file():
                raise DeploybenchError(f"deployable file {item.path} is missing from {self.root}")
            actual = sha256_file(path)
            if actual != item.sha256:
                raise DeploybenchError(
                    f"deployable file {item.path} changed: sha256 {actual} != {item.sha256}"
                )


class Session(Protocol):
    """A loaded model inside the measurement worker. The harness times :meth:`run` only."""

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Any:
        """Turn one batch into the runtime's feed (done before timing)."""

    def run(self, feed: Any) -> Sequence[np.ndarray]:
        """Run one inference on a prepared feed and return the outputs in declared order."""

    def synchronize(self) -> None:
        """Wait for asynchronous work (GPU streams); a no-op for synchronous runtimes."""

    def info(self) -> dict[str, Any]:
        """What actually ran (providers, precision, threads), for the run record."""

    def close(self) -> None:
        """Release the runtime's resources."""


class ReportsRuntimeLatency(Protocol):
    """Optional addition to :class:`Session`: the runtime's own figure for one inference.

    A session that has it (OpenVINO's ``InferRequest.latency``) defines this method; the
    worker looks it up with ``getattr`` and, when present, reads it after each timed call,
    outside the timed window, into a second series with provenance ``runtime-reported``.
    It must be cheap (an attribute read): the harness-timed series stays the main figure.
    """

    def last_runtime_latency_ns(self) -> int:
        """How long the runtime says the last :meth:`Session.run` took, in nanoseconds."""


class SessionOptions(BaseModel):
    """Environment settings a session factory applies (threads come from the environment)."""

    model_config = ConfigDict(frozen=True)

    threads: int | None = None


SessionFactory = Callable[[Deployable, SessionOptions], Session]


class ToolchainDescription(BaseModel):
    """What `deploybench plugins` and guidance show about a toolchain."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str | None
    summary: str
    input_formats: list[str]
    capabilities: list[str]
    config_schema: dict[str, Any]


class Toolchain(abc.ABC):
    """Base class of deployment toolchains. Subclasses are registered as entry points in the
    ``deploybench.toolchains`` group and must not import their runtime at module level."""

    name: ClassVar[str]
    summary: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    input_formats: ClassVar[tuple[str, ...]]
    capabilities: ClassVar[tuple[str, ...]] = ()
    # The package that carries the runtime on the index; set it to let a toolchain run at
    # another version in its own environment (deploybench.toolchains.envs).
    distribution: ClassVar[str | None] = None

    @classmethod
    def requirements(cls, version: str) -> list[str]:
        """Pinned requirement set of a toolchain environment running ``version``."""
        if cls.distribution is None:
            raise PluginError(f"toolchain '{cls.name}' names no package distribution")
        return [f"{cls.distribution}=={version}"]

    @classmethod
    @abc.abstractmethod
    def availability(cls) -> Availability:
        """Whether the runtime is installed here, and why not; must not import it."""

    @classmethod
    @abc.abstractmethod
    def tool_version(cls) -> str | None:
        """Version of the underlying tool, or None when it is not installed."""

    def parse_config(self, raw: Mapping[str, Any]) -> BaseModel:
        """Validate ``toolchain.config``; errors name the field path and what is allowed."""
        try:
            return self.config_model.model_validate(dict(raw))
        except ValidationError as exc:
            lines = format_validation_error(exc, self.config_model, prefix="toolchain.config")
            raise PluginError(
                f"invalid configuration for toolchain '{self.name}':\n  " + "\n  ".join(lines)
            ) from None

    def describe(self) -> ToolchainDescription:
        """Name, version, input formats, capabilities and the JSON Schema of the config."""
        return ToolchainDescription(
            name=self.name,
            version=self.tool_version(),
            summary=self.summary,
            input_formats=list(self.input_formats),
            capabilities=list(self.capabilities),
            config_schema=self.config_model.model_json_schema(),
        )

    @abc.abstractmethod
    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """List incompatibilities before anything runs (unsupported ops, dtypes, shapes...)."""

    @abc.abstractmethod
    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Run the deployment pipeline into ``workdir`` and return the deployable."""

    @abc.abstractmethod
    def reference_config(self) -> BaseModel:
        """Config that runs the input model as its original framework would: the reference
        run of semantic preservation (fp32, no optimization, no quantization)."""
