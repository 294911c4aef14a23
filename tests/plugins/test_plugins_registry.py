"""The plugin registry: built-ins, lookup errors, in-process registration, cheap listing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import deploybench
from deploybench.errors import PluginError, UserError
from deploybench.plugins import (
    Availability,
    PluginKind,
    PluginStatus,
    known_names,
    list_plugins,
    load_plugin,
    registered,
)
from deploybench.testing.fakes import FakeToolchain

BUILTINS = {
    (PluginKind.TOOLCHAIN, "onnxruntime"),
    (PluginKind.TARGET, "local"),
    (PluginKind.PROBE, "peak-rss"),
    (PluginKind.PROBE, "cpu-time"),
    (PluginKind.PROBE, "thermal"),
}


def _rows(kind: PluginKind | None = None) -> dict[tuple[PluginKind, str], PluginStatus]:
    return {(row.kind, row.name): row for row in list_plugins(kind)}


def test_entry_point_groups() -> None:
    assert PluginKind.TOOLCHAIN.group == "deploybench.toolchains"
    assert PluginKind.TARGET.group == "deploybench.targets"
    assert PluginKind.PROBE.group == "deploybench.probes"


def test_plugin_error_is_a_user_error() -> None:
    assert issubclass(PluginError, UserError)


def test_builtins_are_listed_with_versions_and_availability() -> None:
    rows = _rows()
    assert set(rows) >= BUILTINS
    for key in BUILTINS:
        row = rows[key]
        assert row.distribution == "deploybench"
        assert row.version == deploybench.__version__
        assert row.value.startswith("deploybench.")
        assert isinstance(row.availability, Availability)
        assert row.availability.available, row.availability.reason
        assert row.availability.reason is None
    onnxruntime_row = rows[(PluginKind.TOOLCHAIN, "onnxruntime")]
    assert onnxruntime_row.value == (
        "deploybench.toolchains.onnxruntime.toolchain:OnnxRuntimeToolchain"
    )
    from importlib.metadata import version

    assert onnxruntime_row.tool_version == version("onnxruntime")


def test_list_by_kind() -> None:
    rows = _rows(PluginKind.PROBE)
    assert {kind for kind, _ in rows} == {PluginKind.PROBE}
    assert {"peak-rss", "cpu-time", "thermal"} <= {name for _, name in rows}


def test_known_names_sorted() -> None:
    names = known_names(PluginKind.PROBE)
    assert names == sorted(names)
    assert {"cpu-time", "peak-rss", "thermal"} <= set(names)
    assert "onnxruntime" in known_names(PluginKind.TOOLCHAIN)
    assert "local" in known_names(PluginKind.TARGET)


def test_load_builtins() -> None:
    toolchain = load_plugin(PluginKind.TOOLCHAIN, "onnxruntime")
    assert toolchain.__name__ == "OnnxRuntimeToolchain"
    assert load_plugin(PluginKind.TARGET, "local").__name__ == "LocalCpuTarget"
    assert load_plugin(PluginKind.PROBE, "peak-rss").__name__ == "PeakRssProbe"


def test_unknown_name_lists_known_and_suggests() -> None:
    with pytest.raises(PluginError) as info:
        load_plugin(PluginKind.TOOLCHAIN, "onnxruntim")
    message = str(info.value)
    assert "unknown toolchain 'onnxruntim'" in message
    assert "(did you mean 'onnxruntime'?)" in message
    assert "known toolchains: cgen, litert, onnxruntime" in message
    assert "deploybench plugins" in message


def test_unknown_probe_suggests_close_match() -> None:
    with pytest.raises(PluginError) as info:
        load_plugin(PluginKind.PROBE, "peak_rss")
    message = str(info.value)
    assert "unknown probe 'peak_rss' (did you mean 'peak-rss'?)" in message
    assert "cpu-time, peak-rss, thermal" in message


def test_unknown_name_without_close_match() -> None:
    with pytest.raises(PluginError) as info:
        load_plugin(PluginKind.TARGET, "quantum-computer")
    assert "did you mean" not in str(info.value)
    assert "known targets: local" in str(info.value)


def test_registered_adds_and_removes_a_plugin() -> None:
    assert "fake" not in known_names(PluginKind.TOOLCHAIN)
    with registered(PluginKind.TOOLCHAIN, "fake", FakeToolchain):
        assert "fake" in known_names(PluginKind.TOOLCHAIN)
        assert load_plugin(PluginKind.TOOLCHAIN, "fake") is FakeToolchain
        row = _rows(PluginKind.TOOLCHAIN)[(PluginKind.TOOLCHAIN, "fake")]
        assert row.value == "(registered in-process)"
        assert row.distribution is None
        assert row.availability.available
        # the built-in is still there next to it
        assert load_plugin(PluginKind.TOOLCHAIN, "onnxruntime").__name__ == "OnnxRuntimeToolchain"
    assert "fake" not in known_names(PluginKind.TOOLCHAIN)
    with pytest.raises(PluginError, match="unknown toolchain 'fake'"):
        load_plugin(PluginKind.TOOLCHAIN, "fake")


def test_registered_is_removed_on_error() -> None:
    with pytest.raises(RuntimeError), registered(PluginKind.TOOLCHAIN, "fake", FakeToolchain):
        raise RuntimeError("boom")
    assert "fake" not in known_names(PluginKind.TOOLCHAIN)


def test_registered_shadows_an_entry_point_and_restores_it() -> None:
    with registered(PluginKind.TOOLCHAIN, "onnxruntime", FakeToolchain):
        assert load_plugin(PluginKind.TOOLCHAIN, "onnxruntime") is FakeToolchain
        assert known_names(PluginKind.TOOLCHAIN).count("onnxruntime") == 1
    assert load_plugin(PluginKind.TOOLCHAIN, "onnxruntime") is not FakeToolchain


def test_registered_nests() -> None:
    class Other(FakeToolchain):
        pass

    with registered(PluginKind.TOOLCHAIN, "fake", FakeToolchain):
        with registered(PluginKind.TOOLCHAIN, "fake", Other):
            assert load_plugin(PluginKind.TOOLCHAIN, "fake") is Other
        assert load_plugin(PluginKind.TOOLCHAIN, "fake") is FakeToolchain
    assert "fake" not in known_names(PluginKind.TOOLCHAIN)


def test_unavailable_plugin_is_listed_with_its_reason() -> None:
    class Missing:
        @classmethod
        def availability(cls) -> Availability:
            return Availability.of_modules("deploybench_no_such_module", extra="missing")

    with registered(PluginKind.TARGET, "missing", Missing):
        row = _rows(PluginKind.TARGET)[(PluginKind.TARGET, "missing")]
    assert not row.availability.available
    assert row.availability.reason is not None
    assert "deploybench_no_such_module" in row.availability.reason
    assert "pip install 'deploybench[missing]'" in row.availability.reason
    assert row.tool_version is None


def test_availability_of_modules() -> None:
    assert Availability.of_modules("json", "numpy", extra="x").available
    missing = Availability.of_modules("json", "deploybench_nope_a", "deploybench_nope_b", extra="y")
    assert not missing.available
    assert missing.reason is not None
    assert "deploybench_nope_a, deploybench_nope_b" in missing.reason
    assert "json" not in missing.reason


def _fake_distribution(root: Path, entry_points: str) -> None:
    info = root / "deploybench_thirdparty-9.8.7.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: deploybench-thirdparty\nVersion: 9.8.7\n"
    )
    (info / "entry_points.txt").write_text(entry_points)


def test_third_party_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "thirdparty_plugin.py").write_text(
        "from deploybench.plugins import Availability\n"
        "class Board:\n"
        "    @classmethod\n"
        "    def availability(cls):\n"
        "        return Availability(available=False, reason='no board attached')\n"
    )
    _fake_distribution(
        tmp_path,
        "[deploybench.targets]\n"
        "board = thirdparty_plugin:Board\n"
        "broken = deploybench_no_such_module_xyz:Thing\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = _rows(PluginKind.TARGET)
    board = rows[(PluginKind.TARGET, "board")]
    assert board.distribution == "deploybench-thirdparty"
    assert board.version == "9.8.7"
    assert board.value == "thirdparty_plugin:Board"
    assert not board.availability.available
    assert board.availability.reason == "no board attached"
    broken = rows[(PluginKind.TARGET, "broken")]
    assert not broken.availability.available
    assert "cannot be imported" in (broken.availability.reason or "")
    with pytest.raises(PluginError, match="target 'broken' is installed but cannot be imported"):
        load_plugin(PluginKind.TARGET, "broken")
    assert load_plugin(PluginKind.TARGET, "board").__name__ == "Board"


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


HEAVY = "('onnxruntime', 'torch', 'onnx', 'sklearn', 'scipy')"


def test_listing_plugins_imports_no_runtime() -> None:
    code = (
        "import sys\n"
        "from deploybench.plugins import list_plugins\n"
        "rows = list_plugins()\n"
        "assert any(r.name == 'onnxruntime' for r in rows)\n"
        "print(','.join(n for n in ('onnxruntime', 'torch') if n in sys.modules))\n"
    )
    assert _python(code) == ""


def test_importing_deploybench_is_cheap() -> None:
    code = (
        "import sys\n"
        "import deploybench, deploybench.plugins, deploybench.spec\n"
        f"print(','.join(n for n in {HEAVY} if n in sys.modules))\n"
    )
    assert _python(code) == ""


def test_known_names_do_not_import_plugin_modules() -> None:
    code = (
        "import sys\n"
        "from deploybench.plugins import PluginKind, known_names\n"
        "names = [n for k in PluginKind for n in known_names(k)]\n"
        "assert 'onnxruntime' in names\n"
        "print(','.join(m for m in sys.modules if m.startswith("
        "('deploybench.toolchains', 'deploybench.probes', 'deploybench.targets'))))\n"
    )
    assert _python(code) == ""
