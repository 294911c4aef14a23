"""Toolchain guides: ``GUIDE.md`` next to each toolchain's code, shipped as package data.

``docs/toolchains/<name>.md`` are copies made by ``make docs``
(``python -m deploybench.toolchains.guides docs/toolchains``); a test keeps them in sync.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from deploybench.errors import PluginError
from deploybench.toolchains.base import Toolchain

GUIDE_NAME = "GUIDE.md"
HEADER = "<!-- Generated from src/deploybench/toolchains/{name}/GUIDE.md by `make docs`. -->\n"


def guide(toolchain: type[Toolchain]) -> str | None:
    """The guide shipped in the toolchain's package, or None when it has none."""
    package = toolchain.__module__.rpartition(".")[0] or toolchain.__module__
    try:
        return resources.files(package).joinpath(GUIDE_NAME).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
        return None


def rendered_guides() -> dict[str, str]:
    """``<name>.md`` -> content for every registered toolchain that ships a guide."""
    from deploybench.plugins import PluginKind, load_plugin
    from deploybench.plugins.registry import known_names

    pages: dict[str, str] = {}
    for name in known_names(PluginKind.TOOLCHAIN):
        try:
            text = guide(load_plugin(PluginKind.TOOLCHAIN, name))
        except PluginError:
            continue
        if text is not None:
            pages[f"{name}.md"] = HEADER.format(name=name) + text
    return pages


def main(argv: list[str] | None = None) -> int:
    """Write the guides into the folder given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0])
    folder.mkdir(parents=True, exist_ok=True)
    for filename, text in sorted(rendered_guides().items()):
        (folder / filename).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
