"""Fixtures for every lab test (server, auth, lifecycle, client, agent, PostgreSQL).

Databases
    ``backend``       parametrized over ``sqlite`` and ``postgresql``; yields the URL of a fresh,
                      empty database (tests that take it, directly or through ``lab``, run on both).
    ``postgres_url``  a fresh PostgreSQL database (cloned from a template migrated once per
                      session, dropped afterwards). Skips unless ``DEPLOYBENCH_TEST_POSTGRES_URL``
                      (an admin SQLAlchemy URL, e.g. ``postgresql+psycopg://postgres@host/postgres``)
                      is set.

Servers
    ``lab``           a running lab (:class:`Lab`): ``create_app`` + ``TestClient`` with its
                      lifespan (lease sweeper) running, an admin account, helpers for accounts,
                      agents, uploads, submissions and agent calls.
    ``app_client``    the ``TestClient`` of ``lab`` (an ``httpx.Client``; base URL
                      ``http://testserver``; pass ``lab.admin.headers`` or an account's headers).
    ``lab_factory``   ``lab_factory(db_url=None, **settings)`` starts further labs (e.g. a second
                      server on the same database; pass ``data_dir`` to share artifacts too);
                      all are stopped at teardown.

Settings of ``lab``: :data:`LAB_DEFAULTS`, overridden per test with
``@pytest.mark.lab_settings(lease_ttl=0.5, ...)`` (any :class:`ServerSettings` field).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import URL, make_url
from starlette.testclient import TestClient

from deploybench.runner.record import RunRecord
from deploybench.server.app import bootstrap_admin, create_app
from deploybench.server.deps import Services
from deploybench.server.settings import ServerSettings
from deploybench.services.auth import Principal
from deploybench.testing.records import make_record

PG_ENV = "DEPLOYBENCH_TEST_POSTGRES_URL"
PG_SKIP = f"{PG_ENV} is not set: PostgreSQL tests need a server (CI starts one)"
API = "/api/v1"
# Small limits keep the tests fast; the sweeper runs often but leases live long unless a test
# asks for short ones (then it usually calls expire_leases() itself).
LAB_DEFAULTS: dict[str, Any] = {
    "max_upload_bytes": 64 * 1024,
    "lease_ttl": 30.0,
    "max_attempts": 3,
    "retry_backoff": 0.2,
    "sweep_interval": 0.2,
    # Most lab tests queue placeholder bytes as models (they test scheduling, not models);
    # test_lab_compatibility.py turns the submit-time checks on with real models.
    "check_compatibility": False,
}


_NAMES = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lab_settings(**fields): ServerSettings overrides for the `lab` fixture"
    )


# -- databases --------------------------------------------------------------------------------


def _admin_conninfo(url: URL) -> str:
    """A libpq URL (no SQLAlchemy driver suffix) for psycopg."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_execute(admin: URL, statement: str) -> None:
    import psycopg

    with psycopg.connect(_admin_conninfo(admin), autocommit=True) as connection:
        connection.execute(statement)


class _PgDatabases:
    """Fresh databases cloned from a template migrated once. Cloning takes a while (its WAL is
    synced), so a few clones are made ahead, in the background, while tests run."""

    AHEAD = 2  # two clones at once roughly halve the wait; more do not help

    def __init__(self, admin: URL, template: str) -> None:
        self.admin, self.template = admin, template
        self._worker = ThreadPoolExecutor(max_workers=self.AHEAD, thread_name_prefix="pg-clone")
        self._drops: list[Future[None]] = []
        self._ready = deque(self._worker.submit(self._clone) for _ in range(self.AHEAD))

    def _clone(self) -> str:
        name = f"deploybench_test_{uuid.uuid4().hex[:12]}"
        _pg_execute(self.admin, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def _drop(self, name: str) -> None:
        _pg_execute(self.admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def take(self) -> str:
        """The name of a new, empty database at the head schema."""
        name = self._ready.popleft().result()
        self._ready.append(self._worker.submit(self._clone))
        return name

    def drop(self, name: str) -> None:
        """Drop a database (in the background)."""
        self._drops.append(self._worker.submit(self._drop, name))

    def close(self) -> None:
        """Drop the spare databases and wait for every drop (errors surface here)."""
        for spare in self._ready:
            with contextlib.suppress(Exception):
                self.drop(spare.result())
        self._worker.shutdown(wait=True)
        for dropped in self._drops:
            dropped.result()


@pytest.fixture(scope="session")
def _pg_databases() -> Iterator[_PgDatabases]:
    """Source of fresh PostgreSQL databases for this session (skips without a server)."""
    raw = os.environ.get(PG_ENV)
    if not raw:
        pytest.skip(PG_SKIP)
    from deploybench.store.database import make_engine, upgrade

    admin = make_url(raw)
    template = f"deploybench_tmpl_{uuid.uuid4().hex[:10]}"
    _pg_execute(admin, f'CREATE DATABASE "{template}"')
    try:
        engine = make_engine(admin.set(database=template).render_as_string(hide_password=False))
        upgrade(engine)
        engine.dispose()  # a template must have no open connections when cloned
        databases = _PgDatabases(admin, template)
        try:
            yield databases
        finally:
            databases.close()
    finally:
        _pg_execute(admin, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


@pytest.fixture
def postgres_url(_pg_databases: _PgDatabases) -> Iterator[str]:
    """URL of a fresh PostgreSQL database of this test only (already at the head schema)."""
    name = _pg_databases.take()
    try:
        yield _pg_databases.admin.set(database=name).render_as_string(hide_password=False)
    finally:
        _pg_databases.drop(name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database migrated to head, once per session (copied per test)."""
    from deploybench.store.database import make_engine, upgrade

    path = tmp_path_factory.mktemp("lab-template") / "lab.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL on each backend (PostgreSQL skipped without a server)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        shutil.copyfile(template, tmp_path / "lab.db")
        return f"sqlite:///{tmp_path / 'lab.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# -- the lab ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A lab account and its first token."""

    id: int
    name: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` header of this account."""
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Agent:
    """A registered agent: its account, its name and its farm-wide target names."""

    account: Account
    name: str
    targets: list[str]

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` header of the agent's account."""
        return self.account.headers


@dataclass
class Lab:
    """A running lab server with helpers. Every helper asserts the call succeeded."""

    app: FastAPI
    client: TestClient
    admin: Account
    settings: ServerSettings
    _inputs: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> Services:
        """The app's services (store, lab, auth) for direct, service-level calls."""
        held: Services = self.app.state.services
        return held

    def principal(self, account: Account) -> Principal:
        """The principal behind an account's token (for LabService calls)."""
        return self.services.auth.authenticate(account.token)

    def unique(self, prefix: str) -> str:
        """A name not used before in this process (so labs sharing a database never clash)."""
        return f"{prefix}{next(_NAMES)}"

    def add_user(self, role: str = "user", name: str | None = None) -> Account:
        """Create an account (user, operator, admin or agent) through POST /users."""
        name = name or self.unique(role)
        answer = self.client.post(
            f"{API}/users", json={"name": name, "role": role}, headers=self.admin.headers
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        return Account(body["id"], name, role, body["token"])

    def add_agent(self, plugins: tuple[str, ...] = ("local",), name: str | None = None) -> Agent:
        """An agent account registered with targets ``<name>/<plugin>``."""
        account = self.add_user("agent")
        name = name or self.unique("agent")
        answer = self.client.post(
            f"{API}/agents/register",
            json={"name": name, "version": "test", "targets": [{"name": p} for p in plugins]},
            headers=account.headers,
        )
        assert answer.status_code == 200, answer.text
        return Agent(account, name, answer.json()["targets"])

    def upload(self, data: bytes, account: Account | None = None) -> str:
        """PUT bytes into the artifact store; returns their sha256."""
        digest = hashlib.sha256(data).hexdigest()
        answer = self.client.put(
            f"{API}/artifacts/{digest}", content=data, headers=(account or self.admin).headers
        )
        assert answer.status_code == 201, answer.text
        return digest

    def definition(self, name: str = "exp", target: str = "local", **extra: Any) -> dict[str, Any]:
        """A valid experiment whose model and dataset are uploaded artifacts (no zoo build)."""
        if not self._inputs:
            self._inputs["model"] = self.upload(b"test model bytes")
            self._inputs["dataset"] = self.upload(b"test dataset bytes")
        return {
            "name": name,
            "problem": {
                "model": {"path": "model.onnx", "sha256": self._inputs["model"]},
                "dataset": {"path": "data.npz", "sha256": self._inputs["dataset"]},
                "task": "classification",
            },
            "toolchain": {"name": "onnxruntime"},
            "target": {"name": target},
            **extra,
        }

    def submit(self, account: Account, *definitions: dict[str, Any]) -> tuple[str, list[str]]:
        """POST /experiments; returns (campaign, job ids)."""
        answer = self.client.post(
            f"{API}/experiments",
            json={"experiments": list(definitions) or [self.definition()]},
            headers=account.headers,
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        return body["campaign"], body["jobs"]

    def job(self, job_id: str, account: Account | None = None) -> dict[str, Any]:
        """GET /jobs/{id}."""
        answer = self.client.get(f"{API}/jobs/{job_id}", headers=(account or self.admin).headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def lease(self, agent: Agent, free: list[str] | None = None) -> dict[str, Any] | None:
        """POST /agents/{name}/lease without waiting: the assignment, or None (204)."""
        answer = self.client.post(
            f"{API}/agents/{agent.name}/lease",
            json={"free": agent.targets if free is None else free, "wait": 0},
            headers=agent.headers,
        )
        assert answer.status_code in (200, 204), answer.text
        return answer.json() if answer.status_code == 200 else None

    def heartbeat(
        self, agent: Agent, job_id: str, epoch: int, phase: str | None = None
    ) -> httpx.Response:
        """POST /jobs/{id}/heartbeat (response returned unchecked)."""
        answer: httpx.Response = self.client.post(
            f"{API}/jobs/{job_id}/heartbeat",
            json={"epoch": epoch, "phase": phase},
            headers=agent.headers,
        )
        return answer

    def finish(
        self, agent: Agent, job_id: str, epoch: int, record: RunRecord | None = None, **extra: Any
    ) -> httpx.Response:
        """POST /jobs/{id}/finish (response returned unchecked)."""
        body: dict[str, Any] = {"epoch": epoch, **extra}
        if record is not None:
            body["record"] = record.model_dump(mode="json")
        answer: httpx.Response = self.client.post(
            f"{API}/jobs/{job_id}/finish", json=body, headers=agent.headers
        )
        return answer

    def heal(self, agent: Agent, folder: Path) -> None:
        """Pass the health check a suspect target now needs, through the real path: the
        sweeper queues it, the agent leases it first, and a succeeded record makes it good."""
        deadline = time.monotonic() + 20
        check = None
        while check is None and time.monotonic() < deadline:
            if self.settings.sweep_interval > 1:
                self.services.lab.sweep()  # no sweeper running: passes by hand
            check = self.lease(agent)  # (a poll also brings an offline agent back)
            if check is None:
                time.sleep(0.05)
        assert check is not None and check["definition"]["name"] == "health-check", check
        where = folder / f"heal-{uuid.uuid4().hex[:8]}"
        where.mkdir(parents=True)
        answer = self.finish(agent, check["job_id"], check["epoch"], self.record(where))
        assert answer.status_code == 200 and answer.json()["state"] == "succeeded", answer.text
        health = {t["name"]: t["health"] for t in self.services.lab.list_targets()}
        assert health[check["target"]] == "good", health

    def record(self, folder: Path, upload: bool = True, **kwargs: Any) -> RunRecord:
        """A synthetic run record (``make_record``), its artifacts uploaded unless told not."""
        record, files = make_record(folder, **kwargs)
        if upload:
            for path in files.values():
                self.upload(path.read_bytes())
        return record


LabFactory = Callable[..., Lab]


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[LabFactory]:
    """``lab_factory(db_url=None, **settings)``: start a lab (SQLite in tmp_path by default)."""
    with contextlib.ExitStack() as stack:

        def start(db_url: str | None = None, **overrides: Any) -> Lab:
            settings = ServerSettings(
                db_url=db_url or f"sqlite:///{tmp_path / 'lab.db'}",
                **{
                    "data_dir": tmp_path / f"lab-data-{uuid.uuid4().hex[:8]}",
                    **LAB_DEFAULTS,
                    **overrides,
                },
            )
            app = create_app(settings)
            client = stack.enter_context(TestClient(app))  # runs the lifespan (sweeper)
            token = bootstrap_admin(app)
            if token is None:  # a second server on a database that has its admin already
                services: Services = app.state.services
                admin_id = services.auth.user_id("admin")
                token = services.auth.issue_token(admin_id, "test")[1]
            me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
            admin = Account(app.state.services.auth.user_id("admin"), "admin", "admin", token)
            return Lab(app, client, admin, settings)

        yield start


@pytest.fixture
def lab(request: pytest.FixtureRequest, backend: str, lab_factory: LabFactory) -> Lab:
    """A running lab on ``backend`` with LAB_DEFAULTS (+ the test's ``lab_settings`` marker)."""
    marker = request.node.get_closest_marker("lab_settings")
    return lab_factory(backend, **(marker.kwargs if marker else {}))


@pytest.fixture
def app_client(lab: Lab) -> TestClient:
    """The running lab's TestClient."""
    return lab.client
