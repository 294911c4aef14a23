"""What the QEMU targets share: their tools, how they report being unusable, QEMU's version."""

from __future__ import annotations

import shutil
from typing import ClassVar

from deploybench.plugins.availability import Availability
from deploybench.targets.base import Target


def missing_tools(tools: tuple[str, ...]) -> str | None:
    """None when every tool is on PATH, else which are missing and how to install them."""
    from deploybench.targets.embedded.tools import APT_HINTS

    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return None
    hints = "; ".join(dict.fromkeys(APT_HINTS[tool] for tool in missing))
    return f"{', '.join(missing)} not found; run: {hints}"


class QemuTarget(Target):
    """Base of targets that cross-compile generated C and run it under a QEMU binary."""

    # The cross-compiler and the QEMU binary (the last one) the target needs on PATH.
    tools: ClassVar[tuple[str, ...]]

    @classmethod
    def availability(cls) -> Availability:
        """Available when every tool is installed; otherwise the apt command to run."""
        reason = missing_tools(cls.tools)
        return Availability(available=reason is None, reason=reason)

    @classmethod
    def tool_version(cls) -> str | None:
        """QEMU's version."""
        from deploybench.targets.embedded.tools import first_line_of

        return first_line_of([cls.tools[-1], "--version"])
