"""Environment capture and thermal probing read real files, and say so when they are absent."""

from __future__ import annotations

from pathlib import Path

from deploybench.harness.environment import (
    capture_environment,
    cpu_identity,
    governors,
    temperatures,
)
from deploybench.probes.base import ProcessObservation
from deploybench.probes.process import CpuTimeProbe, PeakRssProbe
from deploybench.probes.thermal import ThermalProbe


def _fake_sysfs(root: Path, temps: dict[str, int], governor: str | None) -> Path:
    for index, (kind, millideg) in enumerate(temps.items()):
        zone = root / "class" / "thermal" / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{millideg}\n")
    if governor:
        for cpu in ("cpu0", "cpu1"):
            path = root / "devices" / "system" / "cpu" / cpu / "cpufreq"
            path.mkdir(parents=True)
            (path / "scaling_governor").write_text(governor + "\n")
    return root


def test_sensors_are_read_from_sysfs(tmp_path: Path) -> None:
    sysfs = _fake_sysfs(tmp_path, {"x86_pkg_temp": 54000, "acpitz": 41500}, "performance")
    assert governors(sysfs) == {"cpu0": "performance", "cpu1": "performance"}
    assert temperatures(sysfs) == {"thermal_zone0:x86_pkg_temp": 54.0, "thermal_zone1:acpitz": 41.5}


def test_missing_sensors_are_reported_unavailable(tmp_path: Path) -> None:
    assert "unavailable" in governors(tmp_path)
    assert "unavailable" in temperatures(tmp_path)


def test_cpuinfo_parsing(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: sse avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: sse avx2 fma\n"
    )
    assert cpu_identity(tmp_path) == ("Test CPU 9000", ["avx2", "fma", "sse"])
    assert cpu_identity(tmp_path / "missing") == (None, [])


def test_capture_environment_has_every_section(tmp_path: Path) -> None:
    env = capture_environment(sysfs=tmp_path)
    for key in ("os", "python", "cpu", "memory", "load_average", "timer", "packages", "env"):
        assert key in env
    assert env["cpu"]["governor"]["unavailable"]
    assert env["timer"]["resolution_ns"] > 0
    assert "numpy" in env["packages"]


def test_thermal_probe_with_and_without_sensors(tmp_path: Path) -> None:
    observation = ProcessObservation(
        peak_rss_bytes=1024, user_seconds=1.0, system_seconds=0.5, wall_seconds=3.0
    )
    sysfs = _fake_sysfs(tmp_path / "hot", {"cpu": 60000}, None)
    probe = ThermalProbe(sysfs)
    probe.before()
    (sysfs / "class" / "thermal" / "thermal_zone0" / "temp").write_text("65000\n")
    readings = {r.metric: r.value for r in probe.after(observation)}
    assert readings == {"temperature_start": 60.0, "temperature_end": 65.0}
    cold = ThermalProbe(tmp_path / "empty")
    cold.before()
    for reading in cold.after(observation):
        assert reading.value is None and reading.unavailable


def test_process_probes() -> None:
    observation = ProcessObservation(
        peak_rss_bytes=1024, user_seconds=1.0, system_seconds=0.5, wall_seconds=3.0
    )
    assert PeakRssProbe().after(observation)[0].value == 1024
    cpu = {r.metric: r.value for r in CpuTimeProbe().after(observation)}
    assert cpu == {"cpu_seconds": 1.5, "cpu_utilisation": 0.5}
