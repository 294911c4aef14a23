"""Shared fixtures: one throw-away DEPLOYBENCH_HOME per test session, so open problems are
built once and never land in the user's data folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def deploybench_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point DEPLOYBENCH_HOME (inherited by worker processes) at a session temp folder."""
    home = tmp_path_factory.mktemp("deploybench-home")
    previous = os.environ.get("DEPLOYBENCH_HOME")
    os.environ["DEPLOYBENCH_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("DEPLOYBENCH_HOME", None)
    else:
        os.environ["DEPLOYBENCH_HOME"] = previous


@pytest.fixture(autouse=True)
def _deploybench_logging_propagates() -> Iterator[None]:
    """`deploybench up` and `agent` (run in-process by CLI tests) configure the deploybench
    loggers not to propagate; undo that around every test so caplog sees their records
    whatever ran before in the same process (the order differs between xdist processes)."""
    import logging

    names = ("deploybench", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {name: logging.getLogger(name) for name in names}
    state = {name: (lg.propagate, list(lg.handlers), lg.level) for name, lg in saved.items()}
    for logger in saved.values():
        logger.propagate, logger.handlers = True, []
    yield
    for name, logger in saved.items():
        logger.propagate, logger.handlers, logger.level = state[name]
