"""The agent's crash journal: what it was doing, written down before it does it.

A small SQLite file (``synchronous=FULL``, so an acknowledged write survives a power loss).
After a restart, every entry not marked done is settled with the server: a record that was
produced but not delivered is delivered, anything else is reported as an infrastructure
failure so the server retries the job instead of waiting for its lease to expire.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

OUTCOME_FILE = "outcome.json"
KEEP_DONE = 200  # finished entries kept for troubleshooting; older ones are pruned

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    phase TEXT NOT NULL,
    state TEXT NOT NULL,
    workdir TEXT NOT NULL,
    pid INTEGER,
    pid_started REAL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt)
)
"""


class EntryState(StrEnum):
    """Where an attempt stands from the agent's side."""

    STARTED = "started"  # leased; inputs, build or measurement under way
    PRODUCED = "produced"  # the record exists in the work dir; not yet acknowledged
    DONE = "done"  # the server has the outcome (or refused it with 409)


class RecoveryAction(StrEnum):
    """What a restarted agent does with an unfinished entry."""

    DELIVER = "deliver"
    REPORT_LOST = "report-lost"


@dataclass(frozen=True)
class JournalEntry:
    """One attempt as the journal knows it."""

    job_id: str
    attempt: int
    epoch: int
    phase: str
    state: EntryState
    workdir: Path
    pid: int | None = None
    pid_started: float | None = None

    @property
    def outcome_path(self) -> Path:
        """Where the execute process writes the record (or its failure)."""
        return self.workdir / OUTCOME_FILE


def read_outcome(path: Path) -> dict[str, Any] | None:
    """The execute process's outcome, or None when absent or unreadable (it is written
    atomically, so a torn file means it was never completed)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def recovery_action(entry: JournalEntry) -> RecoveryAction:
    """Deliver a record that exists on disk, whatever phase the journal last noted (the agent
    may have died between the process writing it and the journal saying so); otherwise the
    run was interrupted and is reported lost."""
    outcome = read_outcome(entry.outcome_path)
    if outcome is not None and isinstance(outcome.get("record"), dict):
        return RecoveryAction.DELIVER
    return RecoveryAction.REPORT_LOST


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Journal:
    """Append-and-update log of attempts; one short connection per call, so the heartbeat
    thread and the main thread never share a connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10.0)) as db:
            db.execute("PRAGMA synchronous=FULL")
            with db:  # one transaction, committed on success
                yield db

    def begin(self, job_id: str, attempt: int, epoch: int, workdir: Path) -> JournalEntry:
        """Note an assignment before any work starts on it."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO journal VALUES (?, ?, ?, 'assigned', ?, ?, NULL, NULL, ?)",
                (job_id, attempt, epoch, EntryState.STARTED.value, str(workdir), _now()),
            )
        return JournalEntry(job_id, attempt, epoch, "assigned", EntryState.STARTED, workdir)

    def update(
        self,
        job_id: str,
        attempt: int,
        *,
        phase: str | None = None,
        state: EntryState | None = None,
        pid: int | None = None,
        pid_started: float | None = None,
    ) -> None:
        """Change the fields given (others keep their value)."""
        changes: dict[str, Any] = {
            "phase": phase,
            "state": state.value if state else None,
            "pid": pid,
            "pid_started": pid_started,
        }
        wanted = {k: v for k, v in changes.items() if v is not None}
        sets = ", ".join(f"{k} = ?" for k in wanted)
        with self._connect() as db:
            db.execute(
                f"UPDATE journal SET {sets}{', ' if sets else ''}updated_at = ? "
                "WHERE job_id = ? AND attempt = ?",
                (*wanted.values(), _now(), job_id, attempt),
            )

    def done(self, job_id: str, attempt: int) -> None:
        """The server has the outcome: nothing to recover for this attempt any more."""
        self.update(job_id, attempt, state=EntryState.DONE)
        with self._connect() as db:
            db.execute(
                "DELETE FROM journal WHERE state = ? AND rowid NOT IN "
                "(SELECT rowid FROM journal WHERE state = ? ORDER BY updated_at DESC LIMIT ?)",
                (EntryState.DONE.value, EntryState.DONE.value, KEEP_DONE),
            )

    def entries(self, *, pending_only: bool = False) -> list[JournalEntry]:
        """Entries, oldest first; ``pending_only``: those not done."""
        query = (
            "SELECT job_id, attempt, epoch, phase, state, workdir, pid, pid_started FROM journal"
        )
        if pending_only:
            query += f" WHERE state != '{EntryState.DONE.value}'"
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY updated_at, rowid").fetchall()
        return [
            JournalEntry(r[0], r[1], r[2], r[3], EntryState(r[4]), Path(r[5]), r[6], r[7])
            for r in rows
        ]
