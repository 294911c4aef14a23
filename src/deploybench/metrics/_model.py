"""Shared base of every metrics result model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ResultModel(BaseModel):
    """Immutable result: it goes into a run record as a JSON dict and must not change after."""

    model_config = ConfigDict(frozen=True, extra="forbid")
