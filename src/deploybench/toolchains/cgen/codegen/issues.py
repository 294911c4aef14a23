"""Why a model cannot be generated: one immutable record per problem, and the error that lists
them all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deploybench.toolchains.cgen.codegen.operators import SUPPORTED_OPERATORS


@dataclass(frozen=True)
class OperatorIssue:
    """One reason the model cannot be generated, tied to the node (or tensor) that causes it."""

    op_type: str
    node: str
    reason: str

    def render(self) -> str:
        """A one-line message naming the operator, the node and what to do about it."""
        if self.reason == "unsupported operator":
            return (
                f"operator {self.op_type} (node {self.node!r}) is not supported by cgen; "
                f"supported: {', '.join(SUPPORTED_OPERATORS)}"
            )
        return f"operator {self.op_type} (node {self.node!r}): {self.reason}"


class CodegenError(ValueError):
    """The model cannot be turned into C; ``issues`` holds every reason found."""

    def __init__(self, issues: Sequence[OperatorIssue]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"- {issue.render()}" for issue in self.issues)
        super().__init__(f"cgen cannot generate C for this model:\n{lines}")
