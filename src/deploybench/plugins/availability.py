"""Whether a plugin can run here, and why not."""

from __future__ import annotations

import importlib.util
from importlib import metadata

from pydantic import BaseModel, ConfigDict


class Availability(BaseModel):
    """``available`` plus the reason and the fix when it is not."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str | None = None

    @classmethod
    def of_modules(cls, *modules: str, extra: str) -> Availability:
        """Available when every module can be found, without importing any of them."""
        missing = [name for name in modules if importlib.util.find_spec(name) is None]
        if not missing:
            return cls(available=True)
        return cls(
            available=False,
            reason=f"missing Python module(s) {', '.join(missing)}; "
            f"install with: pip install 'deploybench[{extra}]'",
        )


def distribution_version(name: str) -> str | None:
    """Installed version of a Python distribution, read from its metadata (no import)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
