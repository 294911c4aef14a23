"""Start one worker process: own session and process group, CPU affinity, memory limit,
timeout with a kill of the whole group, and the child's rusage from ``os.wait4``.

Waiting uses a pidfd and ``select`` (no busy-wait), and never ``Popen.poll``, which would reap
the child and lose its rusage.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from deploybench.spec.environment import EnvironmentSpec

CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class LaunchResult:
    """How the worker process ended and what the OS accounted for it."""

    exit_code: int | None
    signal: int | None
    timed_out: bool
    oom_killed: bool
    # ru_maxrss of the child: it includes the pages the forked child shared with the parent
    # before exec, so it is an upper bound; workers report their own VmHWM instead.
    peak_rss_bytes: int
    user_seconds: float
    system_seconds: float
    wall_seconds: float
    memory_mechanism: str | None


class _MemoryCgroup:
    """A cgroup-v1 memory group limiting real memory (RSS + page cache) of one worker."""

    def __init__(self, limit: int) -> None:
        self.path = CGROUP_V1_MEMORY / "deploybench" / uuid.uuid4().hex
        self.path.mkdir(parents=True)
        (self.path / "memory.limit_in_bytes").write_text(str(limit))

    def oom_killed(self) -> bool:
        try:
            text = (self.path / "memory.oom_control").read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip() != "0":
                return True
        return False

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _cgroup_usable() -> bool:
    return os.access(CGROUP_V1_MEMORY, os.W_OK) and (CGROUP_V1_MEMORY / "cgroup.procs").exists()


@contextlib.contextmanager
def _memory_group(limit: int | None) -> Iterator[_MemoryCgroup | None]:
    if limit is None or not _cgroup_usable():
        yield None
        return
    try:
        group = _MemoryCgroup(limit)
    except OSError:
        yield None
        return
    try:
        yield group
    finally:
        group.remove()


def worker_environment(base: Mapping[str, str], environment: EnvironmentSpec) -> dict[str, str]:
    """The child's variables: the parent's, the thread count for OpenMP/BLAS, the user's."""
    env = dict(base)
    if environment.threads is not None:
        for name in _THREAD_VARS:
            env[name] = str(environment.threads)
    env.update(environment.env)
    return env


def launch(
    argv: list[str],
    environment: EnvironmentSpec,
    timeout: float,
    log_path: Path,
    cwd: Path,
) -> LaunchResult:
    """Run ``argv`` as an isolated worker and wait for it, at most ``timeout`` seconds."""
    limit = int(environment.memory_limit) if environment.memory_limit is not None else None
    affinity = environment.cpu_affinity
    with _memory_group(limit) as group:
        mechanism = "cgroup-v1" if group else ("rlimit-as" if limit is not None else None)
        procs_file = str(group.path / "cgroup.procs") if group else None

        def prepare_child() -> None:
            # Runs in the child between fork and exec, so the runtime's threads inherit it all.
            if affinity is not None:
                os.sched_setaffinity(0, affinity)
            if procs_file is not None:
                with open(procs_file, "w") as handle:
                    handle.write(str(os.getpid()))
            elif limit is not None:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        start = time.monotonic()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=worker_environment(os.environ, environment),
                start_new_session=True,
                preexec_fn=prepare_child,
            )
        timed_out = not _wait_readable(process.pid, timeout)
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)  # keeps Popen from waiting again
        wall = time.monotonic() - start
        # Kill stragglers the worker may have left in its group (runtime helper processes).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        oom = group.oom_killed() if group else False
    return LaunchResult(
        exit_code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        timed_out=timed_out,
        oom_killed=oom,
        peak_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
        user_seconds=usage.ru_utime,
        system_seconds=usage.ru_stime,
        wall_seconds=wall,
        memory_mechanism=mechanism,
    )


def _wait_readable(pid: int, timeout: float) -> bool:
    """Block until the process exits (True) or the timeout passes (False)."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def python_worker_argv(request_path: Path, python: str | None = None) -> list[str]:
    """Command line of the measurement worker for a request file."""
    return [python or sys.executable, "-m", "deploybench.harness.worker", str(request_path)]
