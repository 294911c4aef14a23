"""PostgreSQL specifics: the result store contract, the migrated schema, and two servers
sharing one database. (The API and lifecycle tests run on PostgreSQL through ``backend``.)
Every test gets a database of its own; all skip unless DEPLOYBENCH_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from deploybench.services.lab import Assignment
from deploybench.store.artifacts import FilesystemArtifactStore
from deploybench.store.database import current_revision, head_revision
from deploybench.store.sql import SqlResultStore
from deploybench.testing.result_store_contract import ResultStoreContract

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Lab


class TestPostgresResultStore(ResultStoreContract):
    @pytest.fixture
    def store(self, postgres_url: str, tmp_path: Path) -> SqlResultStore:
        store = SqlResultStore(postgres_url, FilesystemArtifactStore(tmp_path / "artifacts"))
        assert store.engine.dialect.name == "postgresql"
        return store

    def corrupt(self, store: SqlResultStore, sha256: str) -> None:
        root = Path(store.artifacts.root)  # type: ignore[attr-defined]
        path = root / "objects" / sha256[:2] / sha256[2:]
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


def test_the_schema_is_migrated_with_the_partial_unique_index(
    postgres_url: str, tmp_path: Path
) -> None:
    store = SqlResultStore(postgres_url, FilesystemArtifactStore(tmp_path))
    try:
        assert current_revision(store.engine) == head_revision()
        with store.engine.connect() as connection:
            definition = connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                {"name": "uq_jobs_one_active_per_target"},
            ).scalar_one()
        assert definition.startswith("CREATE UNIQUE INDEX")
        assert "(target_id)" in definition and "WHERE" in definition
        assert "'assigned'" in definition and "'running'" in definition
    finally:
        store.close()


def test_two_servers_on_one_database_lease_one_job_per_target(
    postgres_url: str, lab_factory: Callable[..., Lab]
) -> None:
    first, second = lab_factory(postgres_url), lab_factory(postgres_url)
    agent = first.add_agent()
    _, ids = first.submit(first.admin, *(first.definition(f"j{i}") for i in range(3)))
    seen = second.client.get("/api/v1/jobs", headers=second.admin.headers).json()
    assert [j["id"] for j in seen] == ids

    services = [first.services.lab, second.services.lab]
    principal = first.principal(agent.account)
    barrier = threading.Barrier(8)
    won: list[Assignment] = []

    def race(index: int) -> None:
        barrier.wait()
        got = services[index % 2].lease(principal, agent.name, agent.targets)
        if got is not None:
            won.append(got)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1, won
    assert won[0].job_id == ids[0]
    states = [second.job(i)["state"] for i in ids]
    assert states == ["assigned", "queued", "queued"]
    # The second server fences the first one's agent like its own.
    assert second.heartbeat(agent, ids[0], won[0].epoch + 1).status_code == 409
    assert second.heartbeat(agent, ids[0], won[0].epoch).status_code == 200


def test_one_replica_leads_the_sweeper_and_another_takes_over(postgres_url: str) -> None:
    from deploybench.server.leader import Leadership
    from deploybench.store.database import make_engine

    first, second = make_engine(postgres_url), make_engine(postgres_url)
    try:
        a, b = Leadership(first), Leadership(second)
        assert a.is_leader()
        assert a.is_leader()  # still held, same connection
        assert not b.is_leader()
        a.release()
        assert b.is_leader()
        assert not a.is_leader()
        b.release()
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_always_leads(tmp_path: Path) -> None:
    from deploybench.server.leader import Leadership
    from deploybench.store.database import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'lab.db'}")
    assert Leadership(engine).is_leader()
    engine.dispose()
