"""Which cores can run code compiled for which: the ``cpu`` option against the board."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deploybench.toolchains.base import Finding, Severity

if TYPE_CHECKING:
    from deploybench.targets.base import TargetInfo
    from deploybench.toolchains.cgen.config import CgenConfig

# Cores whose instruction set includes everything code compiled for the key may use.
# ARMv6-M (M0) is a subset of ARMv7-M (M3), itself a subset of ARMv7E-M (M4: DSP) and of
# ARMv8-M Mainline (M33); the M4F's FPv4-SP is a subset of the M7's FPv5 and of the M33's FPU
# (QEMU models the M33 with its FPU and DSP extension).
RUNS_ON: dict[str, frozenset[str]] = {
    "cortex-m0": frozenset(
        {"cortex-m0", "cortex-m3", "cortex-m4", "cortex-m4f", "cortex-m7", "cortex-m33"}
    ),
    "cortex-m3": frozenset({"cortex-m3", "cortex-m4", "cortex-m4f", "cortex-m7", "cortex-m33"}),
    "cortex-m4": frozenset({"cortex-m4", "cortex-m4f", "cortex-m7", "cortex-m33"}),
    "cortex-m4f": frozenset({"cortex-m4f", "cortex-m7", "cortex-m33"}),
    "cortex-m7": frozenset({"cortex-m7"}),
    "cortex-m33": frozenset({"cortex-m33"}),
}


def cpu_findings(config: CgenConfig, target: TargetInfo) -> list[Finding]:
    """Refuse a ``cpu`` the target's core cannot run, one given for a non-Cortex-M target
    (the host and aarch64 builds compile for their own architecture), and a hardware float
    ABI on a board without an FPU."""
    board_cpu = target.extra.get("cpu")
    findings: list[Finding] = []
    is_board = isinstance(board_cpu, str) and board_cpu.startswith("cortex-m")
    if is_board and config.float_abi in ("hard", "softfp") and not target.extra.get("fpu"):
        findings.append(
            Finding(
                severity=Severity.ERROR,
                code="no-fpu",
                subject="float_abi",
                message=f"float_abi '{config.float_abi}' needs an FPU and the "
                f"{target.extra.get('board', target.name)} board's {board_cpu} has none",
                fix="use float_abi: soft, or a board with an FPU (mps2-an386, an500, an505)",
            )
        )
    return findings + _core_findings(config, target, board_cpu)


def _core_findings(config: CgenConfig, target: TargetInfo, board_cpu: object) -> list[Finding]:
    if config.cpu is None:
        return []
    if not isinstance(board_cpu, str) or not board_cpu.startswith("cortex-m"):
        return [
            Finding(
                severity=Severity.ERROR,
                code="cpu-not-applicable",
                subject="cpu",
                message=f"toolchain.config.cpu '{config.cpu}' selects a Cortex-M core but "
                f"target '{target.name}' is not a Cortex-M board",
                fix="remove cpu, or run on the qemu-cortex-m target",
            )
        ]
    if board_cpu not in RUNS_ON[config.cpu]:
        runnable = sorted(cpu for cpu, hosts in RUNS_ON.items() if board_cpu in hosts)
        return [
            Finding(
                severity=Severity.ERROR,
                code="cpu-mismatch",
                subject="cpu",
                message=f"code compiled for {config.cpu} does not run on the "
                f"{target.extra.get('board', target.name)} board's {board_cpu}",
                fix=f"use one of: {', '.join(runnable)}, or leave cpu unset",
            )
        ]
    return []
