"""The SQL result store on SQLite: the contract, migrations, concurrency, bad data folders."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from deploybench.errors import UserError
from deploybench.store.artifacts import FilesystemArtifactStore
from deploybench.store.database import current_revision, head_revision, make_engine, upgrade
from deploybench.store.sql import SqlResultStore
from deploybench.testing.records import make_record
from deploybench.testing.result_store_contract import ResultStoreContract


def _open(root: Path) -> SqlResultStore:
    return SqlResultStore(
        f"sqlite:///{root / 'db.sqlite'}", FilesystemArtifactStore(root / "artifacts")
    )


class TestSqliteResultStore(ResultStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> SqlResultStore:
        return _open(tmp_path / "store")

    def corrupt(self, store: SqlResultStore, sha256: str) -> None:
        root = Path(store.artifacts.root)  # type: ignore[attr-defined]
        path = root / "objects" / sha256[:2] / sha256[2:]
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


def test_fresh_database_is_at_head(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert current_revision(store.engine) == head_revision() == "0004"


def test_upgrade_from_the_first_schema_backfills_metrics(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0001")
    record, _ = make_record(tmp_path / "files")
    with engine.begin() as connection:  # what a 0001-era deploybench wrote
        connection.execute(
            sa.text(
                "INSERT INTO experiments (name, canonical_hash, definition, created_at) "
                "VALUES ('exp', 'h', :d, '2026-01-01 00:00:00')"
            ),
            {"d": json.dumps(record.experiment)},
        )
        connection.execute(
            sa.text(
                "INSERT INTO runs (id, experiment_id, status, verdict, provenance, toolchain, "
                "target, owner, started_at, finished_at, record, record_sha256, manifest, "
                "created_at) VALUES (:id, 1, 'succeeded', 'valid', 'measured', 'onnxruntime', "
                "'local', NULL, '2026-01-01 00:00:00', '2026-01-01 00:00:03', :record, 'x', "
                "'{}', '2026-01-01 00:00:03')"
            ),
            {"id": record.id, "record": record.model_dump_json()},
        )
    engine.dispose()
    store = SqlResultStore(
        f"sqlite:///{tmp_path / 'old.db'}", FilesystemArtifactStore(tmp_path / "artifacts")
    )
    assert current_revision(store.engine) == head_revision()
    assert store.get_run(record.id).record == record
    from deploybench.store.queries import MetricCondition, RunFilter

    found = store.list_runs(RunFilter(conditions=[MetricCondition.parse("latency_ms.p99<3")]))
    assert [r.record.id for r in found] == [record.id]
    assert store.get_run(record.id).replay_of is None


def _store_runs(root: str, count: int, seed: int) -> None:
    store = _open(Path(root))
    for i in range(count):
        record, files = make_record(Path(root) / f"files-{seed}-{i}", seed=seed * 100 + i)
        store.save_run(record, files)


def test_two_processes_store_runs_at_the_same_time(tmp_path: Path) -> None:
    _open(tmp_path).close()  # schema created once; concurrent openers find it ready
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_store_runs, args=(str(tmp_path), 8, s)) for s in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    store = _open(tmp_path)
    runs = store.list_runs()
    assert len(runs) == 16
    assert all(store.verify_run(r.record.id).ok for r in runs)


def test_two_processes_migrating_a_new_database_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_store_runs, args=(str(tmp_path), 1, s)) for s in (3, 4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]


def test_data_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="DEPLOYBENCH_HOME"):
        make_engine(f"sqlite:///{blocker / 'sub' / 'db.sqlite'}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_read_only_data_directory(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(UserError, match="not writable"):
        make_engine(f"sqlite:///{folder / 'db.sqlite'}")


def test_bad_database_url() -> None:
    with pytest.raises(UserError, match="not a database URL"):
        make_engine("definitely not a url")
