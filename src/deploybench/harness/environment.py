"""Capture the execution environment where the worker runs (REQ-00004: observable conditions).

Sensors this machine lacks are reported as ``{"unavailable": reason}``, never guessed. The
sysfs and procfs roots are parameters so tests can point them at fake trees.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

# Variables that change how runtimes use threads or memory: recorded when set.
_RELEVANT_ENV_PREFIXES = (
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "KMP_",
    "ORT_",
    "DEPLOYBENCH_",
    "CUDA_",
    "TF_",
    "PYTHONHASHSEED",
)


def unavailable(reason: str) -> dict[str, str]:
    """The one shape of a missing reading."""
    return {"unavailable": reason}


def cpu_identity(procfs: Path = Path("/proc")) -> tuple[str | None, list[str]]:
    """CPU model name and ISA flags from /proc/cpuinfo (x86 'flags', Arm 'Features')."""
    model: str | None = None
    flags: list[str] = []
    try:
        text = (procfs / "cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = sorted(value.split())
    return model, flags


def governors(sysfs: Path = Path("/sys")) -> dict[str, Any]:
    """Frequency governor per CPU, or why it cannot be read."""
    base = sysfs / "devices" / "system" / "cpu"
    found = {
        path.parent.parent.name: path.read_text().strip()
        for path in sorted(base.glob("cpu[0-9]*/cpufreq/scaling_governor"))
        if path.is_file()
    }
    return found or unavailable("no cpufreq in sysfs (virtual machine or driver not loaded)")


def temperatures(sysfs: Path = Path("/sys")) -> dict[str, Any]:
    """Thermal zone temperatures in °C, or why there are none."""
    zones: dict[str, Any] = {}
    for zone in sorted((sysfs / "class" / "thermal").glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            millideg = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        zones[f"{zone.name}:{kind}"] = millideg / 1000.0
    return zones or unavailable("no thermal zones in sysfs")


def installed_packages() -> dict[str, str]:
    """Every installed Python distribution and its version (the tool-version lock).

    When a name appears twice on ``sys.path`` (a toolchain environment in front of the main
    one), the first wins, as it does for imports.
    """
    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(name.lower(), dist.version)
    return dict(sorted(versions.items()))


def capture_environment(sysfs: Path = Path("/sys"), procfs: Path = Path("/proc")) -> dict[str, Any]:
    """Snapshot of the OS, CPU, memory, load, sensors, timer and tool versions."""
    model, flags = cpu_identity(procfs)
    clock = time.get_clock_info("perf_counter")
    freq = psutil.cpu_freq()
    memory = psutil.virtual_memory()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "os": {
            "platform": platform.platform(),
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "hostname": platform.node(),
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "prefix": sys.prefix,
        },
        "cpu": {
            "model": model,
            "isa_features": flags,
            "logical_cores": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "affinity": sorted(os.sched_getaffinity(0)),
            "hypervisor": "hypervisor" in flags,
            "frequency_mhz": {"current": freq.current, "min": freq.min, "max": freq.max}
            if freq
            else unavailable("cpufreq not exposed"),
            "governor": governors(sysfs),
        },
        "memory": {"total_bytes": memory.total, "available_bytes": memory.available},
        "load_average": load if load is not None else unavailable("getloadavg failed"),
        "temperatures_c": temperatures(sysfs),
        "timer": {
            "clock": "perf_counter_ns",
            "implementation": clock.implementation,
            "resolution_ns": clock.resolution * 1e9,
            "monotonic": clock.monotonic,
        },
        "env": {
            key: value
            for key, value in sorted(os.environ.items())
            if key.startswith(_RELEVANT_ENV_PREFIXES)
        },
        "packages": installed_packages(),
    }
