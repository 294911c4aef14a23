"""The launcher isolates the worker: process group kill on timeout, rusage, affinity, memory."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from deploybench.harness.launcher import launch, worker_environment
from deploybench.spec import EnvironmentSpec


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_exit_code_and_log(tmp_path: Path) -> None:
    result = launch(
        _python("import sys; print('hello'); sys.exit(4)"),
        EnvironmentSpec(),
        timeout=30,
        log_path=tmp_path / "log",
        cwd=tmp_path,
    )
    assert result.exit_code == 4 and result.signal is None and not result.timed_out
    assert (tmp_path / "log").read_text().strip() == "hello"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    code = (
        "import subprocess, time, pathlib; "
        "p = subprocess.Popen(['sleep', '300']); "
        "pathlib.Path('child.pid').write_text(str(p.pid)); time.sleep(300)"
    )
    start = time.monotonic()
    result = launch(
        _python(code), EnvironmentSpec(), timeout=1.5, log_path=tmp_path / "log", cwd=tmp_path
    )
    assert result.timed_out and result.signal == 9
    assert time.monotonic() - start < 10
    grandchild = int((tmp_path / "child.pid").read_text())
    time.sleep(0.2)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == "zombie"


def test_peak_rss_comes_from_the_os(tmp_path: Path) -> None:
    code = "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    result = launch(
        _python(code), EnvironmentSpec(), timeout=60, log_path=tmp_path / "log", cwd=tmp_path
    )
    assert result.exit_code == 0
    assert result.peak_rss_bytes >= 200 * 1024 * 1024
    assert result.user_seconds + result.system_seconds > 0


def test_memory_limit_stops_the_child(tmp_path: Path) -> None:
    code = "b = bytearray(600 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('survived')"
    result = launch(
        _python(code),
        EnvironmentSpec(memory_limit="200MiB"),
        timeout=60,
        log_path=tmp_path / "log",
        cwd=tmp_path,
    )
    assert result.memory_mechanism in ("cgroup-v1", "rlimit-as")
    assert result.exit_code != 0
    assert "survived" not in (tmp_path / "log").read_text()
    if result.memory_mechanism == "cgroup-v1":
        assert result.oom_killed


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs to pin one")
def test_cpu_affinity_is_applied_before_exec(tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0))
    result = launch(
        _python("import os; print(sorted(os.sched_getaffinity(0)))"),
        EnvironmentSpec(cpu_affinity=[cpu]),
        timeout=30,
        log_path=tmp_path / "log",
        cwd=tmp_path,
    )
    assert result.exit_code == 0
    assert (tmp_path / "log").read_text().strip() == f"[{cpu}]"


def test_worker_environment_sets_threads_and_user_variables() -> None:
    env = worker_environment({"PATH": "/bin"}, EnvironmentSpec(threads=3, env={"X": "1"}))
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    assert env["X"] == "1" and env["PATH"] == "/bin"
    # The user's own variables win over the thread defaults.
    env = worker_environment({}, EnvironmentSpec(threads=3, env={"OMP_NUM_THREADS": "7"}))
    assert env["OMP_NUM_THREADS"] == "7"
