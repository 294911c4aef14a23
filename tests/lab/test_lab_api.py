"""The lab's REST API: submissions (all or nothing), artifacts (checksums, size limit),
on SQLite and PostgreSQL (``backend``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench import __version__

if TYPE_CHECKING:
    from conftest import Lab

API = "/api/v1"


def _jobs(lab: Lab) -> list[dict[str, Any]]:
    answer = lab.client.get(f"{API}/jobs", headers=lab.admin.headers)
    assert answer.status_code == 200, answer.text
    jobs: list[dict[str, Any]] = answer.json()
    return jobs


def _leftovers(lab: Lab) -> list[Path]:
    """Temporary upload files left in the data folder."""
    return sorted(lab.settings.data_dir.glob("upload-*"))


def test_health_me_and_targets(lab: Lab) -> None:
    health = lab.client.get(f"{API}/health")  # no token needed
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "version": __version__}
    user = lab.add_user("user", "ann")
    me = lab.client.get(f"{API}/me", headers=user.headers)
    assert me.json() == {"name": "ann", "role": "user"}

    agent = lab.add_agent(("local", "gpu"))
    assert agent.targets == [f"{agent.name}/local", f"{agent.name}/gpu"]
    targets = lab.client.get(f"{API}/targets", headers=user.headers).json()
    assert sorted(t["name"] for t in targets) == sorted(agent.targets)
    assert {t["agent"] for t in targets} == {agent.name}
    assert all(t["enabled"] for t in targets)


def test_submit_queues_a_campaign_of_jobs(lab: Lab) -> None:
    user = lab.add_user("user")
    answer = lab.client.post(
        f"{API}/experiments",
        json={"experiments": [lab.definition("first"), lab.definition("second")], "name": "c"},
        headers=user.headers,
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    campaign, ids = body["campaign"], body["jobs"]
    assert isinstance(campaign, str) and campaign
    assert len(ids) == 2 and len(set(ids)) == 2

    listed = lab.client.get(f"{API}/jobs", params={"campaign": campaign}, headers=user.headers)
    assert [j["id"] for j in listed.json()] == ids  # oldest first, in submission order
    for job_id, name in zip(ids, ("first", "second"), strict=True):
        job = lab.job(job_id, user)
        assert job["state"] == "queued"
        assert job["name"] == name
        assert job["campaign"] == campaign
        assert job["owner"] == user.name
        assert job["attempt"] == 1
        assert job["target"] is None and job["run_id"] is None and job["started_at"] is None
        assert job["submitted_at"]
        logs = lab.client.get(f"{API}/jobs/{job_id}/logs", headers=user.headers).json()
        assert [e["kind"] for e in logs] == ["queued"]

    events = lab.client.get(f"{API}/events", params={"once": True}, headers=user.headers).json()
    queued = [e for e in events if e["kind"] == "queued"]
    assert sorted(e["job"] for e in queued) == sorted(ids)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    after = lab.client.get(
        f"{API}/events", params={"once": True, "after": events[0]["id"]}, headers=user.headers
    ).json()
    assert [e["id"] for e in after] == [e["id"] for e in events[1:]]
    lab.client.post(f"{API}/jobs/{ids[0]}/abort", headers=user.headers)
    queued_now = lab.client.get(f"{API}/jobs", params={"state": "queued"}, headers=user.headers)
    assert [j["id"] for j in queued_now.json()] == ids[1:]


# (field path named in the 422 detail, how to spoil a valid definition)
INVALID: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("bogus", lambda d: d.update(bogus=1)),  # unknown key
    ("measurement.repetitions", lambda d: d.update(measurement={"repetitions": 0})),  # range
    ("environment.threads", lambda d: d.update(environment={"threads": 5000})),  # range (max)
    ("name", lambda d: d.update(name="no spaces allowed")),
    ("toolchain.name", lambda d: d.update(toolchain={"config": {}})),  # missing field
    ("toolchain.version", lambda d: d["toolchain"].update(version="not a constraint")),
    ("problem.model.sha256", lambda d: d["problem"]["model"].update(sha256="NOT-HEX")),
    ("problem.model", lambda d: d["problem"]["model"].update(zoo="digits-mlp")),  # zoo and path
]


def test_invalid_definitions_are_refused_and_nothing_is_queued(lab: Lab) -> None:
    user = lab.add_user("user")
    lab.submit(user, lab.definition("earlier"))
    before = _jobs(lab)
    for path, spoil in INVALID:
        bad = lab.definition("bad")
        spoil(bad)
        answer = lab.client.post(
            f"{API}/experiments",
            json={"experiments": [lab.definition("good"), bad]},
            headers=user.headers,
        )
        assert answer.status_code == 422, (path, answer.text)
        detail = answer.json()["detail"]
        assert any(line.startswith(f"{path}:") for line in detail), (path, detail)
        assert any("experiment [1]" in line for line in detail), detail  # which one is wrong
        assert _jobs(lab) == before, path  # the valid one was not queued either
    assert not any(
        e["kind"] == "queued" and e["job"] not in {j["id"] for j in before}
        for e in lab.client.get(f"{API}/events", params={"once": True}, headers=user.headers).json()
    )
    empty = lab.client.post(f"{API}/experiments", json={"experiments": []}, headers=user.headers)
    assert empty.status_code == 422
    assert _jobs(lab) == before


def test_definitions_must_reference_uploaded_artifacts(lab: Lab) -> None:
    user = lab.add_user("user")
    model = lab.upload(b"an uploaded model", user)
    accepted = lab.definition()
    accepted["problem"]["model"] = {"path": "x", "sha256": model}
    _, (job_id,) = lab.submit(user, accepted)
    assignment = lab.lease(lab.add_agent())
    assert assignment is not None and assignment["job_id"] == job_id
    assert assignment["inputs"]["model"] == model  # what the agent will download

    missing = hashlib.sha256(b"never uploaded").hexdigest()
    for role in ("model", "dataset"):
        refused = lab.definition()
        refused["problem"][role] = {"path": "x", "sha256": missing}
        before = _jobs(lab)
        answer = lab.client.post(
            f"{API}/experiments",
            json={"experiments": [lab.definition(), refused]},
            headers=user.headers,
        )
        assert answer.status_code == 400, answer.text
        text = " ".join(answer.json()["detail"])
        assert missing in text and f"problem.{role}" in text
        assert _jobs(lab) == before

    no_digest = lab.definition()
    no_digest["problem"]["model"] = {"path": "local-file.onnx"}
    answer = lab.client.post(
        f"{API}/experiments", json={"experiments": [no_digest]}, headers=user.headers
    )
    assert answer.status_code == 400
    assert "upload" in " ".join(answer.json()["detail"])


def test_users_operators_and_admins_submit_agents_may_not(lab: Lab) -> None:
    agent = lab.add_agent()
    answer = lab.client.post(
        f"{API}/experiments", json={"experiments": [lab.definition()]}, headers=agent.headers
    )
    assert answer.status_code == 403
    assert _jobs(lab) == []
    ids = [lab.submit(lab.add_user(role), lab.definition())[1][0] for role in ("user", "operator")]
    ids += lab.submit(lab.admin, lab.definition())[1]
    assert [j["id"] for j in _jobs(lab)] == ids


def test_upload_then_download_gives_the_same_bytes(lab: Lab) -> None:
    user = lab.add_user("user")
    data = bytes(range(256)) * 40
    digest = hashlib.sha256(data).hexdigest()
    answer = lab.client.put(f"{API}/artifacts/{digest}", content=data, headers=user.headers)
    assert answer.status_code == 201
    assert answer.json() == {"sha256": digest, "size": len(data)}
    assert lab.services.store.artifacts.exists(digest)
    other = lab.add_user("user")
    download = lab.client.get(f"{API}/artifacts/{digest}", headers=other.headers)
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "application/octet-stream"
    again = lab.client.put(f"{API}/artifacts/{digest}", content=data, headers=user.headers)
    assert again.status_code == 201  # re-uploading is harmless (content-addressed)
    assert _leftovers(lab) == []


def test_uploads_over_the_limit_are_refused(lab: Lab) -> None:
    limit = lab.settings.max_upload_bytes
    exact = b"x" * limit
    assert lab.upload(exact) == hashlib.sha256(exact).hexdigest()  # the limit itself is fine

    big = b"y" * (limit + 1)
    digest = hashlib.sha256(big).hexdigest()
    declared = lab.client.put(f"{API}/artifacts/{digest}", content=big, headers=lab.admin.headers)
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts while streaming
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = lab.client.put(
        f"{API}/artifacts/{digest}", content=chunks(), headers=lab.admin.headers
    )
    assert streamed.status_code == 413
    assert not lab.services.store.artifacts.exists(digest)
    assert _leftovers(lab) == []


def test_bad_artifact_requests_store_nothing(lab: Lab) -> None:
    claimed = hashlib.sha256(b"what I said").hexdigest()
    answer = lab.client.put(
        f"{API}/artifacts/{claimed}", content=b"what I sent", headers=lab.admin.headers
    )
    assert answer.status_code == 400
    assert "checksum" in answer.json()["detail"]
    actual = hashlib.sha256(b"what I sent").hexdigest()
    for digest in (claimed, actual):
        assert not lab.services.store.artifacts.exists(digest)
        got = lab.client.get(f"{API}/artifacts/{digest}", headers=lab.admin.headers)
        assert got.status_code == 404  # unknown sha256

    unknown = hashlib.sha256(b"nobody uploaded this").hexdigest()
    for bad in ("xyz", unknown.upper(), unknown[:-1], unknown + "0"):
        got = lab.client.get(f"{API}/artifacts/{bad}", headers=lab.admin.headers)
        assert got.status_code == 422, (bad, got.status_code)
        put = lab.client.put(f"{API}/artifacts/{bad}", content=b"data", headers=lab.admin.headers)
        assert put.status_code == 422, (bad, put.status_code)
    traversal = lab.client.get(f"{API}/artifacts/..%2F..%2Fetc%2Fpasswd", headers=lab.admin.headers)
    assert traversal.status_code in (404, 422)
    assert _leftovers(lab) == []
    assert lab.services.store.artifacts.list_all() == []
