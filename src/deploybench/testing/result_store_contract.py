"""The contract of result stores. Subclass :class:`ResultStoreContract` and provide a
``store`` fixture (a fresh, empty :class:`~deploybench.store.sql.SqlResultStore`); run it
against every database backend (SQLite here, PostgreSQL in the lab)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploybench.store.queries import MetricCondition, RunFilter
from deploybench.store.sql import RunAlreadyStoredError, RunNotFoundError, SqlResultStore
from deploybench.testing.records import make_record


class ResultStoreContract:
    """Behaviour every result store backend must show."""

    def corrupt(self, store: SqlResultStore, sha256: str) -> None:
        """Flip a byte of a stored artifact (backend-specific hook)."""
        raise NotImplementedError

    def test_round_trip_is_exact(self, store: SqlResultStore, tmp_path: Path) -> None:
        """What comes back is the record that went in, with a manifest."""
        record, files = make_record(tmp_path)
        store.save_run(record, files, owner="ann")
        stored = store.get_run(record.id)
        assert stored.record == record
        assert stored.owner == "ann"
        assert set(stored.manifest["artifacts"]) == set(record.artifacts)
        assert stored.manifest["inputs"] == record.inputs
        assert store.get_run(record.id[:16]).record.id == record.id

    def test_runs_are_immutable(self, store: SqlResultStore, tmp_path: Path) -> None:
        """Storing the same run id twice is refused."""
        record, files = make_record(tmp_path)
        store.save_run(record, files)
        with pytest.raises(RunAlreadyStoredError):
            store.save_run(record, files)

    def test_unknown_id(self, store: SqlResultStore) -> None:
        """An unknown id names itself and says how to list runs."""
        with pytest.raises(RunNotFoundError, match="runs list"):
            store.get_run("no-such-run")

    def test_filters(self, store: SqlResultStore, tmp_path: Path) -> None:
        """Experiment, toolchain, target, status, dates and metric conditions."""
        base = datetime(2026, 1, 1, tzinfo=UTC)
        fast, f1 = make_record(tmp_path / "a", name="a", median_ms=0.5, p99_ms=1.0, started=base)
        slow, f2 = make_record(
            tmp_path / "b",
            name="b",
            median_ms=5,
            p99_ms=9,
            toolchain="other",
            started=base + timedelta(days=1),
        )
        failed, f3 = make_record(
            tmp_path / "c",
            name="a",
            status="failed",
            target="board",
            started=base + timedelta(days=2),
        )
        for record, files in ((fast, f1), (slow, f2), (failed, f3)):
            store.save_run(record, files)

        def ids(**kwargs: object) -> list[str]:
            return [r.record.id for r in store.list_runs(RunFilter(**kwargs))]  # type: ignore[arg-type]

        assert ids() == [failed.id, slow.id, fast.id]  # newest first
        assert ids(experiment="a") == [failed.id, fast.id]
        assert ids(toolchain="other") == [slow.id]
        assert ids(target="board") == [failed.id]
        assert ids(status="succeeded") == [slow.id, fast.id]
        assert ids(since=base + timedelta(hours=12), until=base + timedelta(days=1, hours=1)) == [
            slow.id
        ]
        assert ids(conditions=[MetricCondition.parse("latency_ms.p99<5")]) == [fast.id]
        assert ids(conditions=[MetricCondition.parse("latency_ms.median>=5")]) == [slow.id]
        assert ids(conditions=[MetricCondition.parse("load_ms=12.5")]) == [slow.id, fast.id]
        assert ids(
            conditions=[
                MetricCondition.parse("accuracy.accuracy>0.5"),
                MetricCondition.parse("latency_ms.p99>5"),
            ]
        ) == [slow.id]
        assert ids(limit=1) == [failed.id]

    def test_verify_reports_corruption_and_missing_files(
        self, store: SqlResultStore, tmp_path: Path
    ) -> None:
        """A flipped byte or a missing artifact is reported, never passed as valid."""
        record, files = make_record(tmp_path)
        store.save_run(record, files)
        assert store.verify_run(record.id).ok
        self.corrupt(store, record.artifacts["raw_latencies"])
        report = store.verify_run(record.id)
        assert not report.ok
        assert any("raw_latencies" in p and "corrupted" in p for p in report.problems)
        store.artifacts.remove(record.artifacts["log"])
        assert any("'log'" in p and "missing" in p for p in store.verify_run(record.id).problems)

    def test_delete_collects_only_unreferenced_artifacts(
        self, store: SqlResultStore, tmp_path: Path
    ) -> None:
        """A shared artifact survives until its last run is deleted."""
        first, f1 = make_record(tmp_path / "1", seed=1)
        second, f2 = make_record(tmp_path / "2", seed=2)  # same model bytes as the first
        store.save_run(first, f1)
        store.save_run(second, f2)
        shared = first.artifacts["model"]
        assert shared == second.artifacts["model"]
        deleted, removed = store.delete_runs([first.id])
        assert deleted == [first.id]
        assert shared not in removed and store.artifacts.exists(shared)
        assert first.artifacts["raw_latencies"] in removed
        assert not store.artifacts.exists(first.artifacts["raw_latencies"])
        _, removed = store.delete_runs([second.id])
        assert shared in removed and not store.artifacts.exists(shared)
        assert store.list_runs() == []
        with pytest.raises(RunNotFoundError):
            store.delete_runs([first.id])
