"""The measurement process an agent starts for each job.

``python -m deploybench.agent.execute JOB_FILE OUTCOME_FILE`` reads the job (definition and
the downloaded input files), prepares and runs it, and writes the outcome atomically: either
``{"record": ..., "artifacts": {name: path}}`` or ``{"failure": {"kind", "message"}}``. A
process that dies without writing it is an infrastructure failure for the agent.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from deploybench.agent.process import PROGRESS_PREFIX


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON so a reader sees the whole file or none of it (even after a power loss)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def _progress(phase: str, done: int, total: int) -> None:
    print(f"{PROGRESS_PREFIX}{phase} {done} {total}", flush=True)


def run_job(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Prepare and execute one job; the outcome as written to the outcome file."""
    from deploybench.errors import UserError
    from deploybench.runner.experiment import execute_prepared
    from deploybench.runner.preparation import ProblemFiles, prepare_experiment
    from deploybench.spec import parse_experiment

    try:
        experiment = parse_experiment(job["definition"], source=f"job {job['job_id']}")
        _progress("resolve", 0, 1)
        files = ProblemFiles(model=Path(job["model"]), dataset=Path(job["dataset"]))
        prepared = prepare_experiment(experiment, files)
        _progress("resolve", 1, 1)
        outcome = execute_prepared(prepared, workdir, _progress)
    except UserError as exc:
        # Valid for the server but not runnable here (incompatible toolchain, bad model):
        # running it again will not help, so it is not an infrastructure failure.
        return {"failure": {"kind": "user", "message": str(exc)}}
    except OSError as exc:
        traceback.print_exc()
        return {"failure": {"kind": "infrastructure", "message": f"{type(exc).__name__}: {exc}"}}
    except Exception as exc:
        # A bug, most likely; retrying would repeat it, so it is reported, not retried.
        traceback.print_exc()
        return {"failure": {"kind": "internal", "message": f"{type(exc).__name__}: {exc}"}}
    return {
        "record": outcome.record.model_dump(mode="json"),
        "artifacts": {name: str(path) for name, path in outcome.artifacts.files.items()},
    }


def _preload() -> None:
    """Import what every job needs before the job arrives (the agent keeps a spare warm)."""
    import deploybench.runner.experiment
    import deploybench.runner.preparation
    import deploybench.spec
    import deploybench.targets.local  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``JOB_FILE OUTCOME_FILE``, or ``--wait`` then the two paths on stdin
    (tab-separated), which is how the agent's pre-started spare process gets its job."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--wait"]:
        _preload()
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            return 0  # the agent stopped before giving a job
        args = line.split("\t")
    if len(args) != 2:
        print("usage: python -m deploybench.agent.execute JOB_FILE OUTCOME_FILE", file=sys.stderr)
        return 2
    job_file, outcome_file = Path(args[0]), Path(args[1])
    os.chdir(job_file.parent)
    job = json.loads(job_file.read_text(encoding="utf-8"))
    run_dir = job_file.parent / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(outcome_file, run_job(job, run_dir))
    return 0


if __name__ == "__main__":
    code = main()
    # The outcome is fsynced and nothing else is pending: skip the interpreter's teardown of
    # the runtimes loaded here (about a second), which the agent would otherwise wait out.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
