"""Cycle estimates from executed instruction counts: a *simulated* figure, never a measurement.

QEMU (TCG) executes instructions but models no pipeline, wait states or caches, so the only
exact number it gives is the executed instruction count. Cycles are estimated as
``instructions * CPI`` with one average CPI per core.

How the CPIs are derived. ARM publishes Dhrystone 2.1 scores per MHz for each core (Cortex-M
comparison table, ARM "Cortex-M Processor Comparison" and each core's product page):
Cortex-M0 0.87, M0+ 0.95, M3 1.25, M4 1.25, M7 2.14, M33 1.50, M55 1.60 DMIPS/MHz. Those cores
all execute Thumb-2 (or its v6-M subset), so for one compiled program the instruction count is
close to equal and throughput per MHz is inversely proportional to CPI. We anchor the scale at
Cortex-M3 with CPI 1.25: the Cortex-M3 TRM (ARM DDI 0337, "Processor instruction timings")
gives 1 cycle for ALU and multiply, 2 for a single load (1 when pipelined with the next), 1+P
(P = 1..3) for a taken branch, so a typical mix of ~25 % memory and ~15 % taken branches lands
at 1.2-1.35. Every other core follows as ``CPI = 1.25 * 1.25 / (DMIPS/MHz)``.

Known limits: Dhrystone scores come from ARM's best compiler settings; floating-point heavy
code differs (VDIV/VSQRT take 14 cycles on the M4F FPU, soft-float on the M3 is many integer
instructions, which this model does count); flash wait states and M7 caches are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

_ANCHOR_CPI = 1.25
_ANCHOR_DMIPS_PER_MHZ = 1.25
_SOURCE = (
    "ARM Cortex-M processor comparison (Dhrystone 2.1 DMIPS/MHz); CPI = 1.25 x 1.25 / "
    "(DMIPS/MHz), anchored at Cortex-M3 CPI 1.25 from Cortex-M3 TRM (ARM DDI 0337) timings"
)

DMIPS_PER_MHZ: dict[str, float] = {
    "cortex-m0": 0.87,
    "cortex-m0plus": 0.95,
    "cortex-m3": 1.25,
    "cortex-m4": 1.25,
    "cortex-m7": 2.14,
    "cortex-m33": 1.50,
    "cortex-m55": 1.60,
}
"""ARM's published Dhrystone 2.1 DMIPS/MHz per core (the basis of every CPI below)."""


@dataclass(frozen=True)
class CycleEstimate:
    """Estimated cycles for an instruction count on one core (provenance: simulated)."""

    cycles: float
    seconds_at_clock: float | None
    cpi: float
    clock_hz: int | None
    source_citation: str


def cpi_for(cpu: str) -> float | None:
    """Average CPI assumed for ``cpu`` (GCC ``-mcpu`` name), None without a model."""
    dmips = DMIPS_PER_MHZ.get(cpu)
    return None if dmips is None else _ANCHOR_CPI * _ANCHOR_DMIPS_PER_MHZ / dmips


def cycle_model_unavailable(cpu: str) -> str | None:
    """None when ``cpu`` has a cycle model, otherwise the reason why it has none."""
    if cpu in DMIPS_PER_MHZ:
        return None
    if cpu in ("aarch64", "host") or cpu.startswith("cortex-a"):
        return (
            f"no cycle model for {cpu}: qemu-aarch64 user mode runs no core model and an "
            "out-of-order application core has no meaningful average CPI; measure on hardware"
        )
    known = ", ".join(sorted(DMIPS_PER_MHZ))
    return f"no cycle model for {cpu!r}; cores with one: {known}"


def estimate_cycles(
    instructions: int, cpu: str, clock_hz: int | None = None
) -> CycleEstimate | None:
    """Estimate cycles (and seconds at ``clock_hz``) for ``instructions`` executed on ``cpu``.

    This is a simulated estimate (instruction count * average CPI), not a measurement.
    Returns None for CPUs without a model (aarch64 user mode, ...);
    :func:`cycle_model_unavailable` gives the reason.
    """
    cpi = cpi_for(cpu)
    if cpi is None:
        return None
    cycles = instructions * cpi
    return CycleEstimate(
        cycles=cycles,
        seconds_at_clock=None if clock_hz is None else cycles / clock_hz,
        cpi=cpi,
        clock_hz=clock_hz,
        source_citation=_SOURCE,
    )


def instructions_per_inference(count_n: int, count_0: int, n: int) -> float:
    """Instructions of one inference from a run with ``n`` inferences and a baseline with 0.

    Both runs execute the same start-up, input loading and functional pass, so the difference
    is ``n`` inferences plus ``n`` iterations of the harness loop (a handful of instructions).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if count_n < count_0:
        raise ValueError(f"count with {n} inferences ({count_n}) is below the baseline {count_0}")
    return (count_n - count_0) / n
