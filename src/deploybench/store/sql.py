"""The SQL result store: immutable run records, queryable metrics, counted artifacts.

Ownership: a :class:`SqlResultStore` owns its engine and is safe to share between threads
(each call opens its own session). Several processes may use one database at once; on SQLite
WAL mode and a busy timeout make concurrent writers wait rather than fail.

Artifacts are written to the :class:`ArtifactStore` *before* the rows that reference them are
committed, so a committed run never points at a missing file; files whose last reference goes
away are removed after the commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from deploybench.errors import DeploybenchError, UserError
from deploybench.hashing import canonical_hash
from deploybench.runner.record import RunRecord
from deploybench.store.artifacts import (
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    ArtifactStore,
)
from deploybench.store.database import make_engine, upgrade
from deploybench.store.flatten import metric_rows
from deploybench.store.models import (
    ArtifactRow,
    ExperimentRow,
    LogRow,
    MetricRowORM,
    RunArtifactRow,
    RunRow,
    StepRowORM,
)
from deploybench.store.queries import OPERATORS, RunFilter

_MEDIA_TYPES = {
    ".onnx": "application/onnx",
    ".npz": "application/x-npz",
    ".npy": "application/x-npy",
    ".json": "application/json",
    ".log": "text/plain",
    ".txt": "text/plain",
}
# Media types of artifacts uploaded without a file name, by their record name.
_NAME_SUFFIXES = {
    "model": ".onnx",
    "dataset": ".npz",
    "raw_latencies": ".npz",
    "outputs": ".npz",
    "reference_outputs": ".npz",
    "expected_outputs": ".npz",
    "log": ".log",
    "environment": ".json",
    "deployed_manifest": ".json",
}


class RunNotFoundError(UserError):
    """No run with that id (or prefix)."""


class RunAlreadyStoredError(DeploybenchError):
    """A run id was stored before: records are immutable, a new execution is a new run."""


@dataclass(frozen=True)
class StoredRun:
    """A run as stored: the record plus what the store adds around it."""

    record: RunRecord
    manifest: dict[str, Any]
    owner: str | None
    replay_of: str | None
    created_at: datetime


@dataclass(frozen=True)
class VerifyReport:
    """Result of checking a run's record hash and every artifact it references."""

    run_id: str
    checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        """True when nothing is missing or corrupted."""
        return not self.problems


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _now() -> datetime:
    return datetime.now(UTC)


def record_sha256(record: RunRecord) -> str:
    """Canonical hash of a record (sorted-key JSON of its JSON form)."""
    return canonical_hash(record.model_dump(mode="json"))


class SqlResultStore:
    """Runs, experiments, metrics, steps, logs and artifact references in SQL."""

    def __init__(self, url: str, artifacts: ArtifactStore, *, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self.artifacts = artifacts
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    # -- writing ---------------------------------------------------------------------------

    def save_run(
        self,
        record: RunRecord,
        files: Mapping[str, Path] | None,
        *,
        owner: str | None = None,
        replay_of: str | None = None,
        session: Session | None = None,
    ) -> StoredRun:
        """Store a finished run and its artifact files (``files``: record artifact name ->
        path; None when every artifact was already uploaded to the artifact store, as agents
        do). The record is never changed afterwards.

        ``session``: write the rows in the caller's transaction (on this store's engine), so
        that the run and the caller's own changes (the lab closing the job that produced it)
        commit together or not at all."""
        sizes: dict[str, int] = {}
        if files is None:
            for name, digest in record.artifacts.items():
                try:
                    self.artifacts.verify(digest)
                except ArtifactNotFoundError:
                    raise UserError(
                        f"artifact '{name}' ({digest}) of run {record.id} was not uploaded"
                    ) from None
                sizes[digest] = self.artifacts.size(digest)
        else:
            missing = sorted(set(record.artifacts) - set(files))
            if missing:
                raise ValueError(f"no file given for artifacts {missing}")
            for name, digest in record.artifacts.items():
                info = self.artifacts.write_file(files[name])
                if info.sha256 != digest:
                    raise ValueError(f"artifact {name} changed since the record was made")
                sizes[digest] = info.size
        manifest = {
            "record_sha256": record_sha256(record),
            "inputs": dict(record.inputs),
            "artifacts": {
                name: {"sha256": digest, "size": sizes[digest]}
                for name, digest in sorted(record.artifacts.items())
            },
        }
        now = _now()
        if session is not None:
            self._insert_run(session, record, manifest, sizes, files, owner, replay_of, now)
            return StoredRun(record, manifest, owner, replay_of, now)
        with self._sessions.begin() as own:
            self._insert_run(own, record, manifest, sizes, files, owner, replay_of, now)
        # A concurrent delete may have removed a file we deduplicated against between our
        # write and our commit; put back anything missing now that our rows protect it.
        for name, digest in record.artifacts.items():
            if files is not None and not self.artifacts.exists(digest):
                self.artifacts.write_file(files[name])
        return StoredRun(record, manifest, owner, replay_of, now)

    def _insert_run(
        self,
        session: Session,
        record: RunRecord,
        manifest: dict[str, Any],
        sizes: dict[str, int],
        files: Mapping[str, Path] | None,
        owner: str | None,
        replay_of: str | None,
        now: datetime,
    ) -> None:
        """The rows of one run, in ``session``'s transaction."""
        if session.get(RunRow, record.id) is not None:
            raise RunAlreadyStoredError(
                f"run {record.id} is already stored; runs are immutable, run again instead"
            )
        experiment_id = self._experiment_id(session, record.experiment, now)
        session.add(
            RunRow(
                id=record.id,
                experiment_id=experiment_id,
                status=record.status,
                verdict=record.validity.verdict,
                provenance=record.provenance,
                toolchain=record.experiment["toolchain"]["name"],
                target=record.experiment["target"]["name"],
                owner=owner,
                started_at=_parse_time(record.started_at),
                finished_at=_parse_time(record.finished_at),
                record=record.model_dump(mode="json"),
                record_sha256=manifest["record_sha256"],
                manifest=manifest,
                replay_of=replay_of,
                created_at=now,
            )
        )
        session.flush()
        for name, digest in sorted(record.artifacts.items()):
            suffix = files[name].suffix if files is not None else _NAME_SUFFIXES.get(name, "")
            self._reference(session, digest, sizes[digest], suffix, now)
            session.add(RunArtifactRow(run_id=record.id, name=name, sha256=digest))
        session.add_all(
            MetricRowORM(
                run_id=record.id, name=m.name, statistic=m.statistic, value=m.value, unit=m.unit
            )
            for m in metric_rows(record.metrics)
        )
        session.add_all(
            StepRowORM(
                run_id=record.id,
                position=i,
                name=s.name,
                tool=s.tool,
                version=s.version,
                seconds=s.seconds,
                parameters=s.parameters,
                log=s.log,
            )
            for i, s in enumerate(record.steps)
        )
        if "log" in record.artifacts:
            digest = record.artifacts["log"]
            session.add(LogRow(run_id=record.id, name="run", sha256=digest, size=sizes[digest]))

    def _experiment_id(self, session: Session, definition: dict[str, Any], now: datetime) -> int:
        digest = canonical_hash(definition)
        query = select(ExperimentRow.id).where(ExperimentRow.canonical_hash == digest)
        found = session.scalar(query)
        if found is not None:
            return found
        try:
            with session.begin_nested():
                row = ExperimentRow(
                    name=definition["name"],
                    canonical_hash=digest,
                    definition=definition,
                    created_at=now,
                )
                session.add(row)
            return row.id
        except IntegrityError:  # another process stored the same definition just now
            found = session.scalar(query)
            assert found is not None
            return found

    def _reference(
        self, session: Session, digest: str, size: int, suffix: str, now: datetime
    ) -> None:
        bumped = session.execute(
            update(ArtifactRow)
            .where(ArtifactRow.sha256 == digest)
            .values(refcount=ArtifactRow.refcount + 1)
        )
        if bumped.rowcount:  # type: ignore[attr-defined]
            return
        try:
            with session.begin_nested():
                session.add(
                    ArtifactRow(
                        sha256=digest,
                        size=size,
                        media_type=_MEDIA_TYPES.get(suffix, "application/octet-stream"),
                        refcount=1,
                        created_at=now,
                    )
                )
        except IntegrityError:
            session.execute(
                update(ArtifactRow)
                .where(ArtifactRow.sha256 == digest)
                .values(refcount=ArtifactRow.refcount + 1)
            )

    # -- reading ---------------------------------------------------------------------------

    def resolve_id(self, run_id: str) -> str:
        """Full id from an id or a unique prefix of at least 6 characters."""
        with self._sessions() as session:
            if session.get(RunRow, run_id) is not None:
                return run_id
            if len(run_id) >= 6:
                matches = session.scalars(
                    select(RunRow.id).where(RunRow.id.startswith(run_id, autoescape=True)).limit(2)
                ).all()
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    raise RunNotFoundError(
                        f"run id prefix '{run_id}' is ambiguous; give more of it"
                    )
        raise RunNotFoundError(
            f"no run '{run_id}' in the store ({self.url}); list runs with `deploybench runs list`"
        )

    def get_run(self, run_id: str) -> StoredRun:
        """Load one run by id or unique prefix."""
        full = self.resolve_id(run_id)
        with self._sessions() as session:
            row = session.get(RunRow, full)
            assert row is not None
            return StoredRun(
                RunRecord.model_validate(row.record),
                dict(row.manifest),
                row.owner,
                row.replay_of,
                row.created_at,
            )

    def list_runs(self, where: RunFilter | None = None) -> list[StoredRun]:
        """Runs matching the filter, newest first."""
        where = where or RunFilter()
        query = select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id.desc())
        if where.experiment:
            query = query.join(ExperimentRow).where(ExperimentRow.name == where.experiment)
        for column, value in (
            (RunRow.toolchain, where.toolchain),
            (RunRow.target, where.target),
            (RunRow.status, where.status),
            (RunRow.owner, where.owner),
        ):
            if value is not None:
                query = query.where(column == value)
        if where.since is not None:
            query = query.where(RunRow.started_at >= where.since)
        if where.until is not None:
            query = query.where(RunRow.started_at <= where.until)
        for condition in where.conditions:
            key = MetricRowORM.name + "." + MetricRowORM.statistic
            bare = and_(MetricRowORM.name == condition.key, MetricRowORM.statistic == "value")
            compare = OPERATORS[condition.op]
            query = query.where(
                exists().where(
                    MetricRowORM.run_id == RunRow.id,
                    (key == condition.key) | bare,
                    compare(MetricRowORM.value, condition.value),  # type: ignore[arg-type]
                )
            )
        if where.limit is not None:
            query = query.limit(where.limit)
        with self._sessions() as session:
            return [
                StoredRun(
                    RunRecord.model_validate(row.record),
                    dict(row.manifest),
                    row.owner,
                    row.replay_of,
                    row.created_at,
                )
                for row in session.scalars(query)
            ]

    def artifact_names(self, run_id: str) -> dict[str, str]:
        """name -> sha256 of a run's artifacts, as the store references them."""
        full = self.resolve_id(run_id)
        with self._sessions() as session:
            rows = session.execute(
                select(RunArtifactRow.name, RunArtifactRow.sha256).where(
                    RunArtifactRow.run_id == full
                )
            ).all()
        return {name: digest for name, digest in rows}

    # -- integrity ---------------------------------------------------------------------------

    def verify_run(self, run_id: str) -> VerifyReport:
        """Recompute the record's canonical hash and check every artifact's sha256."""
        stored = self.get_run(run_id)
        problems: list[str] = []
        digest = record_sha256(stored.record)
        if digest != stored.manifest.get("record_sha256"):
            problems.append(
                f"record hash {digest} differs from the manifest's "
                f"{stored.manifest.get('record_sha256')}: the stored record was altered"
            )
        if stored.manifest.get("inputs") != stored.record.inputs:
            problems.append("the record's inputs differ from the manifest's")
        checked = 0
        for name, entry in sorted(stored.manifest.get("artifacts", {}).items()):
            checked += 1
            try:
                self.artifacts.verify(entry["sha256"])
            except ArtifactCorruptedError as exc:
                problems.append(f"artifact '{name}' is corrupted: {exc}")
            except ArtifactNotFoundError:
                problems.append(f"artifact '{name}' ({entry['sha256']}) is missing")
        return VerifyReport(stored.record.id, checked, problems)

    # -- deleting ----------------------------------------------------------------------------

    def delete_runs(self, run_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """Delete runs, then the artifacts no run references any more.

        Returns (deleted run ids, removed artifact sha256s).
        """
        ids = [self.resolve_id(run_id) for run_id in run_ids]
        released: list[str] = []
        with self._sessions.begin() as session:
            for run_id in ids:
                digests = session.scalars(
                    select(RunArtifactRow.sha256).where(RunArtifactRow.run_id == run_id)
                ).all()
                for table in (RunArtifactRow, MetricRowORM, StepRowORM, LogRow):
                    session.execute(delete(table).where(table.run_id == run_id))
                session.execute(delete(RunRow).where(RunRow.id == run_id))
                for digest in digests:
                    session.execute(
                        update(ArtifactRow)
                        .where(ArtifactRow.sha256 == digest)
                        .values(refcount=ArtifactRow.refcount - 1)
                    )
            unreferenced = session.scalars(
                select(ArtifactRow.sha256).where(ArtifactRow.refcount <= 0)
            ).all()
            session.execute(delete(ArtifactRow).where(ArtifactRow.refcount <= 0))
            released = list(unreferenced)
        removed = [digest for digest in released if self.artifacts.remove(digest)]
        return ids, removed

    def collect_garbage(self) -> list[str]:
        """Remove artifact files that no row references (left by crashes or discards)."""
        with self._sessions() as session:
            known = set(session.scalars(select(ArtifactRow.sha256)).all())
        return [d for d in self.artifacts.list_all() if d not in known and self.artifacts.remove(d)]

    def stats(self) -> dict[str, Any]:
        """Counts for `deploybench db status`."""
        with self._sessions() as session:
            runs = session.scalar(select(func.count()).select_from(RunRow)) or 0
            artifacts = session.scalar(select(func.count()).select_from(ArtifactRow)) or 0
        return {"url": self.url, "runs": runs, "artifacts": artifacts}


def dumps(record: RunRecord) -> str:
    """Indented JSON of a record (for `runs show --json`)."""
    return json.dumps(record.model_dump(mode="json"), indent=2)
