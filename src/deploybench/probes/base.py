"""The probe contract: observe one measured process and report readings.

A probe is told when the process starts and what the OS accounted when it ended. A probe
whose sensor the machine lacks returns a reading with ``value=None`` and ``unavailable`` set
to the reason, never a made-up number.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from deploybench.plugins.availability import Availability


class ProbeReading(BaseModel):
    """One metric from one probe for one process."""

    model_config = ConfigDict(frozen=True)

    metric: str
    value: float | None
    unit: str
    provenance: str = "measured"
    unavailable: str | None = None


class ProcessObservation(BaseModel):
    """What the launcher learned about a finished process from the OS."""

    model_config = ConfigDict(frozen=True)

    peak_rss_bytes: int | None
    user_seconds: float
    system_seconds: float
    wall_seconds: float


class Probe(abc.ABC):
    """Base class of probes, registered in the ``deploybench.probes`` group."""

    name: ClassVar[str]
    summary: ClassVar[str]

    @classmethod
    def availability(cls) -> Availability:
        """Probes built on the OS are always loadable; sensors may still be missing."""
        return Availability(available=True)

    def before(self) -> None:  # noqa: B027 - optional hook, most probes need no set-up
        """Called just before the measured process starts."""

    @abc.abstractmethod
    def after(self, observation: ProcessObservation) -> list[ProbeReading]:
        """Called once the process has ended; returns this probe's readings."""
