"""Temperatures of the host's thermal zones before and after the measured process."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from deploybench.probes.base import Probe, ProbeReading, ProcessObservation


def read_max_temperature(sysfs: Path) -> float | None:
    """Hottest thermal zone in °C, or None when sysfs exposes none."""
    values: list[float] = []
    for zone in (sysfs / "class" / "thermal").glob("thermal_zone*"):
        try:
            values.append(int((zone / "temp").read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    return max(values) if values else None


class ThermalProbe(Probe):
    """Hottest thermal zone at start and end: shows heating during a repetition."""

    name: ClassVar[str] = "thermal"
    summary: ClassVar[str] = "Hottest sysfs thermal zone before and after each repetition."

    def __init__(self, sysfs: Path = Path("/sys")) -> None:
        self._sysfs = sysfs
        self._start: float | None = None

    def before(self) -> None:
        """Read the start temperature."""
        self._start = read_max_temperature(self._sysfs)

    def after(self, observation: ProcessObservation) -> list[ProbeReading]:
        """Start and end temperatures, or why they are unavailable."""
        end = read_max_temperature(self._sysfs)
        if self._start is None or end is None:
            reason = f"no readable thermal zones under {self._sysfs}/class/thermal"
            return [
                ProbeReading(metric=m, value=None, unit="°C", unavailable=reason)
                for m in ("temperature_start", "temperature_end")
            ]
        return [
            ProbeReading(metric="temperature_start", value=self._start, unit="°C"),
            ProbeReading(metric="temperature_end", value=end, unit="°C"),
        ]
