"""Probes: measurements attached to a measured process, orthogonal to toolchains."""

from deploybench.probes.base import Probe, ProbeReading, ProcessObservation

__all__ = ["Probe", "ProbeReading", "ProcessObservation"]
