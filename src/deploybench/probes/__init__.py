"""Probes: measurements attached to a measured process, orthogonal to toolchains."""

from deploybench.probes.base import ProbeReading, ProcessObservation, Probe

__all__ = ["Probe", "ProbeReading", "ProcessObservation"]
