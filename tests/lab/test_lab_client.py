"""The Python client: error mapping, SSE parsing and input rewriting without a server, then
every operation against the real app in-process (``create_app`` + ``TestClient``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import Lab
from deploybench.client import ChecksumError, Client, ServerError, ServerUnreachableError
from deploybench.client.inputs import collect_experiments, server_definition
from deploybench.client.sse import parse_sse
from deploybench.client.waiting import state_counts, wait_for_jobs
from deploybench.errors import SpecError, UserError
from deploybench.server.app import bootstrap_admin, create_app
from deploybench.server.settings import ServerSettings
from deploybench.services.auth import AuthError, ForbiddenError
from deploybench.services.lab import FenceError, NotFoundError

# -- without a server -------------------------------------------------------------------------


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    return Client("http://lab.test", "dbt_x", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (409, FenceError),
        (422, SpecError),
        (400, UserError),
        (413, UserError),
        (500, ServerError),
    ],
)
def test_http_answers_map_to_deploybench_errors_with_the_servers_message(
    status: int, error: type[Exception]
) -> None:
    client = _mock(lambda r: httpx.Response(status, json={"detail": ["first", "second line"]}))
    with pytest.raises(error) as caught:
        client.job("job-1")
    assert "first\n  second line" in str(caught.value)


def test_fastapi_validation_items_and_plain_text_answers_are_readable() -> None:
    items = {"detail": [{"loc": ["body", "epoch"], "msg": "field required", "type": "missing"}]}
    with pytest.raises(SpecError, match=r"epoch: field required"):
        _mock(lambda r: httpx.Response(422, json=items)).me()
    with pytest.raises(ServerError, match="proxy says no") as caught:
        _mock(lambda r: httpx.Response(502, text="proxy says no")).me()
    assert caught.value.transient


def test_requests_carry_the_bearer_token_and_the_api_prefix() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"name": "ada", "role": "user"})

    assert _mock(handler).me() == {"name": "ada", "role": "user"}
    assert seen[0].headers["authorization"] == "Bearer dbt_x"
    assert str(seen[0].url) == "http://lab.test/api/v1/me"


def test_a_server_that_is_not_running_gets_a_fix_it_message() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ServerUnreachableError, match=r"is it running\? \(`deploybench up`\)"):
        _mock(refuse).jobs()


def test_sse_parsing_follows_the_event_stream_rules() -> None:
    lines = [
        ": keep-alive",
        "id: 7",
        "event: log",
        'data: {"kind": "log",',
        'data:  "message": "hi"}',
        "",
        "",
        'data: {"id": 9, "kind": "queued"}',
        "id: 8",
        "",
        "id: 10",
        "data: not json",
    ]
    events = list(parse_sse(lines))
    assert events == [
        {"kind": "log", "message": "hi", "id": 7},
        {"id": 9, "kind": "queued"},  # the payload's own id wins
        {"message": "not json", "id": 10},  # delivered although the stream ended mid-event
    ]


def test_events_streams_parsed_events() -> None:
    body = "".join(f"id: {i}\ndata: {json.dumps({'id': i, 'kind': 'log'})}\n\n" for i in (1, 2))
    client = _mock(lambda r: httpx.Response(200, text=body))
    assert [e["id"] for e in client.events(after=0)] == [1, 2]


def test_local_files_are_uploaded_and_pinned_by_sha256(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"model")
    (tmp_path / "exp.yaml").write_text(
        "name: e\nproblem: {model: m.onnx, dataset: zoo:digits, task: classification}\n"
        "toolchain: {name: onnxruntime}\n"
    )
    uploaded: list[Path] = []

    def upload(path: Path) -> str:
        uploaded.append(path)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    [experiment] = collect_experiments(tmp_path / "exp.yaml")
    definition = server_definition(experiment, upload)
    assert uploaded == [tmp_path / "m.onnx"]
    assert definition["problem"]["model"]["path"] == str(tmp_path / "m.onnx")
    assert definition["problem"]["model"]["sha256"] == hashlib.sha256(b"model").hexdigest()
    assert definition["problem"]["dataset"] == {"zoo": "digits", "path": None, "sha256": None}
    # A path that is not here but has a sha256 names an artifact uploaded earlier.
    digest = "a" * 64
    [earlier] = collect_experiments(
        {
            "name": "e",
            "problem": {
                "model": {"path": "elsewhere.onnx", "sha256": digest},
                "dataset": "zoo:digits",
                "task": "classification",
            },
            "toolchain": {"name": "onnxruntime"},
        }
    )
    pinned = server_definition(earlier, upload)["problem"]["model"]
    assert (pinned["path"], pinned["sha256"], len(uploaded)) == ("elsewhere.onnx", digest, 1)


def test_a_declared_sha256_must_match_the_file(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"model")
    experiment = collect_experiments(
        {
            "name": "e",
            "problem": {
                "model": {"path": str(tmp_path / "m.onnx"), "sha256": "0" * 64},
                "dataset": "zoo:digits",
                "task": "classification",
            },
            "toolchain": {"name": "onnxruntime"},
        }
    )[0]
    with pytest.raises(SpecError, match=r"problem.model: .* not the declared 0000"):
        server_definition(experiment, lambda p: hashlib.sha256(p.read_bytes()).hexdigest())


def test_invalid_experiments_fail_before_anything_is_uploaded(tmp_path: Path) -> None:
    def no_calls(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"nothing may be sent, got {request.method} {request.url}")

    client = _mock(no_calls)
    with pytest.raises(SpecError, match="toolchain"):
        client.submit([{"name": "e", "problem": {"model": "zoo:digits-mlp"}}])
    missing = {
        "name": "e",
        "problem": {
            "model": str(tmp_path / "gone.onnx"),
            "dataset": "zoo:digits",
            "task": "classification",
        },
        "toolchain": {"name": "onnxruntime"},
    }
    with pytest.raises(SpecError, match="no such file"):
        client.submit(missing)


def test_downloads_are_verified_and_leave_nothing_behind_when_corrupt(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"payload").hexdigest()
    good = _mock(lambda r: httpx.Response(200, content=b"payload"))
    assert good.download_artifact(digest, tmp_path).read_bytes() == b"payload"
    bad = _mock(lambda r: httpx.Response(200, content=b"tampered"))
    with pytest.raises(ChecksumError):
        bad.download_artifact(digest, tmp_path / "copy.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == [digest]


def test_wait_times_out_naming_the_unfinished_jobs() -> None:
    jobs = [{"id": "job-a", "state": "running"}, {"id": "job-b", "state": "succeeded"}]
    with pytest.raises(TimeoutError, match=r"job-a \(running\)") as caught:
        wait_for_jobs(lambda: jobs, progress=False, poll=0.01, timeout=0.05)
    assert "job-b" not in str(caught.value)
    assert state_counts(jobs) == "1 running · 1 succeeded"


# -- against the real server --------------------------------------------------------------------


def _client(lab: Lab, token: str | None = None) -> Client:
    return Client(str(lab.client.base_url), token or lab.admin.token, http=lab.client)


def test_accounts_and_tokens(lab: Lab) -> None:
    admin = _client(lab)
    assert admin.health()["status"] == "ok"
    assert admin.me() == {"name": "admin", "role": "admin"}
    created = admin.add_user("ada", "user")
    ada = _client(lab, created["token"])
    assert ada.me() == {"name": "ada", "role": "user"}
    with pytest.raises(ForbiddenError, match="admin"):
        ada.add_user("eve", "admin")
    extra = ada.new_token(label="laptop", ttl_days=1)
    ada.revoke_token(extra["id"])
    with pytest.raises(AuthError, match="revoked"):
        _client(lab, extra["token"]).me()


def test_submit_uploads_local_files_and_queues_a_campaign(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not really onnx")
    (tmp_path / "data.npz").write_bytes(b"not really npz")
    definition = {
        "name": "mine",
        "problem": {"model": "model.onnx", "dataset": "data.npz", "task": "classification"},
        "toolchain": {"name": "onnxruntime"},
    }
    (tmp_path / "a.yaml").write_text(json.dumps(definition))
    user = _client(lab, lab.add_user().token)
    submission = user.submit([tmp_path / "a.yaml", tmp_path / "a.yaml"], name="pair")
    assert len(submission.jobs) == 2
    jobs = user.jobs(campaign=submission.campaign)
    assert [j["state"] for j in jobs] == ["queued", "queued"]
    assert user.job(submission.jobs[0])["name"] == "mine"
    digest = hashlib.sha256(b"not really onnx").hexdigest()
    assert user.download_artifact(digest, tmp_path / "back.onnx").read_bytes() == (
        b"not really onnx"
    )
    other = _client(lab, lab.add_user().token)
    with pytest.raises(NotFoundError):
        other.job(submission.jobs[0])


def test_server_side_refusals_arrive_as_errors(lab: Lab) -> None:
    admin = _client(lab)
    experiment = {
        "name": "e",
        "problem": {"model": "zoo:nope", "dataset": "zoo:digits"},
        "toolchain": {"name": "onnxruntime"},
    }
    with pytest.raises(UserError, match="nope"):
        admin.submit(experiment)
    assert admin.jobs() == []
    agent = _client(lab, lab.add_user("agent").token)
    with pytest.raises(ForbiddenError):
        agent.submit(lab.definition())


def test_control_wait_events_and_logs(lab: Lab) -> None:
    user_account = lab.add_user()
    user = _client(lab, user_account.token)
    campaign, jobs = lab.submit(user_account, lab.definition("a"), lab.definition("b"))
    assert user.suspend(jobs[0]) == 1
    assert user.job(jobs[0])["state"] == "held"
    assert user.resume(campaign) == 1
    assert user.abort(campaign) == 2
    finished = user.wait(campaign, progress=True, timeout=5)
    assert [j["state"] for j in finished] == ["aborted", "aborted"]
    assert user.wait(jobs, progress=False) == finished
    events = user.events(once=True)
    assert {e["kind"] for e in events} >= {"queued", "held", "aborted"}
    later = user.events(after=events[-2]["id"], once=True)
    assert later == events[-1:]
    assert user.logs(jobs[0])[0]["kind"] == "queued"
    assert user.results_frame(campaign).empty
    with pytest.raises(NotFoundError):
        user.abort("no-such-campaign")


def test_results_frame_has_one_row_per_finished_run(lab: Lab, tmp_path: Path) -> None:
    agent = lab.add_agent()
    campaign, [job_id] = lab.submit(lab.admin)
    assignment = lab.lease(agent)
    assert assignment is not None
    record = lab.record(tmp_path, name="exp")
    client = _client(lab)
    agent_client = _client(lab, agent.account.token)
    agent_client.finish(job_id, assignment["epoch"], record=record.model_dump(mode="json"))
    with pytest.raises(FenceError):
        agent_client.heartbeat(job_id, assignment["epoch"] - 1)
    frame = client.results_frame(campaign)
    assert list(frame["id"]) == [record.id]
    assert frame.loc[0, "status"] == "succeeded"
    assert client.results_frame([job_id, record.id])["id"].tolist() == [record.id]
    assert client.run(record.id)["id"] == record.id
    assert [r["id"] for r in client.runs(experiment="exp")] == [record.id]


def test_for_app_runs_the_app_in_process(tmp_path: Path) -> None:
    settings = ServerSettings(db_url=f"sqlite:///{tmp_path / 'lab.db'}", data_dir=tmp_path / "d")
    app = create_app(settings)
    token = bootstrap_admin(app)
    assert token is not None
    with Client.for_app(app, token) as client:
        assert client.me()["role"] == "admin"
        assert client.targets() == []


def test_over_real_http_events_stream_live(tmp_path: Path) -> None:
    """A real socket: uvicorn on 127.0.0.1, live SSE, and a refused connection afterwards."""
    import threading

    import uvicorn

    from deploybench.server.embedded import free_port, wait_until_up

    settings = ServerSettings(db_url=f"sqlite:///{tmp_path / 'lab.db'}", data_dir=tmp_path / "d")
    app = create_app(settings)
    token = bootstrap_admin(app)
    assert token is not None
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        with Client(url, token, timeout=10) as client:
            (tmp_path / "m.onnx").write_bytes(b"m")
            (tmp_path / "d.npz").write_bytes(b"d")
            experiment = {
                "name": "live",
                "problem": {
                    "model": str(tmp_path / "m.onnx"),
                    "dataset": str(tmp_path / "d.npz"),
                    "task": "classification",
                },
                "toolchain": {"name": "onnxruntime"},
            }
            submission = client.submit(experiment)
            stream = client.events(after=0)
            first = next(stream)
            assert (first["kind"], first["job"]) == ("queued", submission.jobs[0])
            client.abort(submission.campaign)
            assert next(stream)["kind"] == "aborted"  # arrives live, pushed by the server
            stream.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    with pytest.raises(ServerUnreachableError, match="is it running"):
        Client(url, token).me()
