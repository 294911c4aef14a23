"""Tensor descriptions shared by problems, deployables and workers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Dim = int | str | None


class TensorSpec(BaseModel):
    """Name, numpy dtype name and shape of a model input or output.

    A dimension is an int (fixed), a str (symbolic, e.g. "N") or None (unknown).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str = Field(description="numpy dtype name, e.g. float32.")
    shape: list[Dim]

    def render(self) -> str:
        """``name: dtype[d0, d1, ...]`` for messages."""
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"
