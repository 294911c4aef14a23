"""Errors of the embedded layer, placed in deploybench's one hierarchy."""

from __future__ import annotations

from deploybench.errors import RunError, UserError


class ToolMissingError(UserError):
    """A cross compiler, QEMU or a C library is not installed; the message names the package."""


class CompileError(RunError):
    """The compiler or linker rejected the firmware; ``output`` holds what it printed."""

    def __init__(self, message: str, command: list[str], output: str) -> None:
        super().__init__(f"{message}\n$ {' '.join(command)}\n{output}")
        self.command = command
        self.output = output


__all__ = ["CompileError", "ToolMissingError"]
