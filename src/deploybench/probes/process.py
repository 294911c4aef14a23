"""Probes fed by the OS's accounting of the worker process (``wait4`` rusage)."""

from __future__ import annotations

from typing import ClassVar

from deploybench.probes.base import Probe, ProbeReading, ProcessObservation


class PeakRssProbe(Probe):
    """Peak resident set size of the worker process (the kernel's VmHWM for it)."""

    name: ClassVar[str] = "peak-rss"
    summary: ClassVar[str] = "Peak resident memory of the measured process (OS accounting)."

    def after(self, observation: ProcessObservation) -> list[ProbeReading]:
        """The process's high-water mark, or why it is unknown."""
        if observation.peak_rss_bytes is None:
            return [
                ProbeReading(
                    metric="peak_rss",
                    value=None,
                    unit="bytes",
                    unavailable="the worker ended without reporting its memory high-water mark",
                )
            ]
        return [ProbeReading(metric="peak_rss", value=observation.peak_rss_bytes, unit="bytes")]


class CpuTimeProbe(Probe):
    """User + system CPU time of the worker and its utilisation of the wall-clock time."""

    name: ClassVar[str] = "cpu-time"
    summary: ClassVar[str] = "CPU seconds (user + system) and mean cores busy, from rusage."

    def after(self, observation: ProcessObservation) -> list[ProbeReading]:
        """CPU seconds, and CPU seconds per wall second (cores kept busy on average)."""
        cpu = observation.user_seconds + observation.system_seconds
        busy = cpu / observation.wall_seconds if observation.wall_seconds > 0 else None
        return [
            ProbeReading(metric="cpu_seconds", value=cpu, unit="s"),
            ProbeReading(
                metric="cpu_utilisation",
                value=busy,
                unit="cores",
                unavailable=None if busy is not None else "zero wall time",
            ),
        ]
