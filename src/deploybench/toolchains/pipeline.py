"""Logged pipeline steps: each records its tool, version, duration, parameters, the sha256 of
its inputs and outputs, and everything it logged."""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploybench.errors import RunError
from deploybench.hashing import sha256_file
from deploybench.toolchains.base import StepRecord


class BuildError(RunError):
    """A deployment step failed; the message names the step and carries its log."""

    def __init__(self, step: str, message: str, log: str) -> None:
        super().__init__(f"step '{step}' failed: {message}")
        self.step = step
        self.log = log


@dataclass
class StepContext:
    """Handed to the body of a step: declare outputs, add log lines."""

    outputs: dict[str, Path] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def output(self, path: Path) -> Path:
        """Declare ``path`` as an output of the step and return it."""
        self.outputs[path.name] = path
        return path

    def log(self, message: str) -> None:
        """Add a line to the step's log."""
        self.lines.append(message)


@dataclass
class Pipeline:
    """Runs steps in order and keeps their records."""

    steps: list[StepRecord] = field(default_factory=list)

    @contextlib.contextmanager
    def step(
        self,
        name: str,
        tool: str,
        version: str,
        inputs: dict[str, Path],
        parameters: dict[str, Any] | None = None,
    ) -> Iterator[StepContext]:
        """Time the body, capture Python logging and warnings, record hashes."""
        context = StepContext()
        buffer = io.StringIO()
        handler = logging.StreamHandler(buffer)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        previous_level = root.level
        root.setLevel(min(previous_level or logging.WARNING, logging.INFO))
        input_hashes = {label: sha256_file(path) for label, path in inputs.items()}
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield context
            for warning in caught:
                context.log(f"WARNING {warning.category.__name__}: {warning.message}")
        except BuildError:
            raise
        except Exception as exc:
            log = "\n".join([*context.lines, buffer.getvalue()]).strip()
            raise BuildError(name, f"{type(exc).__name__}: {exc}", log) from exc
        finally:
            root.removeHandler(handler)
            root.setLevel(previous_level)
        seconds = time.perf_counter() - start
        log_text = "\n".join([*context.lines, buffer.getvalue().strip()]).strip()
        self.steps.append(
            StepRecord(
                name=name,
                tool=tool,
                version=version,
                seconds=seconds,
                inputs=input_hashes,
                outputs={label: sha256_file(path) for label, path in context.outputs.items()},
                parameters=parameters or {},
                log=log_text,
            )
        )
