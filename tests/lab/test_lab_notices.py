"""Completion notices reach a real SMTP server (aiosmtpd) and a webhook receiver on
127.0.0.1 when a campaign ends."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.orm import sessionmaker

from deploybench.server.embedded import free_port
from deploybench.services.auth import AuthService, Principal, Role
from deploybench.services.lab import LabService
from deploybench.services.notices import CampaignNotice, NoticeSettings, Notifier
from deploybench.store.artifacts import FilesystemArtifactStore
from deploybench.store.sql import SqlResultStore
from deploybench.targets.local import LocalCpuTarget


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Mailbox, int]]:
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_campaign_end_mails_and_posts_the_owner(
    tmp_path: Path,
    smtp: tuple[_Mailbox, int],
    webhook: tuple[list[dict[str, Any]], str],
) -> None:
    mailbox, smtp_port = smtp
    received, hook = webhook
    store = SqlResultStore(
        f"sqlite:///{tmp_path / 'db.sqlite'}", FilesystemArtifactStore(tmp_path / "artifacts")
    )
    notifier = Notifier(NoticeSettings(smtp_host="127.0.0.1", smtp_port=smtp_port))
    lab = LabService(store, max_attempts=1, notifier=notifier)
    auth = AuthService(sessionmaker(store.engine, expire_on_commit=False))
    ann = Principal(
        auth.add_user("ann", Role.USER, email="ann@example.org", webhook_url=hook), "ann", Role.USER
    )
    agent = Principal(auth.add_user("a", Role.AGENT), "a", Role.AGENT)
    definition = {
        "name": "notice",
        "problem": {"model": "zoo:diabetes-linear", "dataset": "zoo:diabetes"},
        "toolchain": {"name": "onnxruntime"},
    }
    campaign, _ = lab.submit(ann, [definition, {**definition, "name": "second"}])
    targets = lab.register_agent(agent, "a", "test", [LocalCpuTarget().describe().model_dump()])
    first = lab.lease(agent, "a", targets)
    assert first is not None
    lab.finish(first.job_id, first.epoch, None, "infrastructure", "board on fire")
    time.sleep(0.3)
    assert mailbox.messages == [] and received == []  # the campaign is not over yet
    lab.abort(ann, campaign)
    _wait(lambda: mailbox.messages and received)
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail.rcpt_tos == ["ann@example.org"]
    body = mail.content.decode()
    assert f"campaign {campaign} failed" in body and "board on fire" in body
    assert len(received) == 1
    assert received[0]["event"] == "campaign.finished" and received[0]["campaign"] == campaign
    assert [j["state"] for j in received[0]["jobs"]] == ["failed", "aborted"]
    lab.abort(ann, campaign)  # nothing left to end: no second notice
    time.sleep(0.3)
    assert len(mailbox.messages) == 1 and len(received) == 1


def test_unreachable_channels_are_logged_not_fatal() -> None:
    # A handler of our own on the notices logger, with the logging tree forced open: what
    # other tests of the same xdist process did to logging (levels, propagation,
    # logging.disable) must not hide the records. caplog missed them there.
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("deploybench.notices")
    handler, saved = Keep(level=logging.WARNING), (logger.disabled, logger.level)
    previous_disable = logging.root.manager.disable
    logger.addHandler(handler)
    logger.disabled, logger.level = False, logging.WARNING
    logging.disable(logging.NOTSET)
    try:
        notice = CampaignNotice("c1", "ann", "ann@example.org", "http://127.0.0.1:9/x", [])
        settings = NoticeSettings(smtp_host="127.0.0.1", smtp_port=9, timeout=1)
        sent = Notifier(settings).send(notice)
    finally:
        logger.removeHandler(handler)
        logger.disabled, logger.level = saved
        logging.disable(previous_disable)
    assert sent == []
    text = "\n".join(record.getMessage() for record in records)
    assert "could not e-mail" in text and "webhook" in text, text


def test_broadcasts_are_mailed_and_a_bad_target_reaches_operators(
    tmp_path: Path,
    smtp: tuple[_Mailbox, int],
    webhook: tuple[list[dict[str, Any]], str],
) -> None:
    mailbox, smtp_port = smtp
    received, hook = webhook
    store = SqlResultStore(
        f"sqlite:///{tmp_path / 'db.sqlite'}", FilesystemArtifactStore(tmp_path / "artifacts")
    )
    lab = LabService(
        store, notifier=Notifier(NoticeSettings(smtp_host="127.0.0.1", smtp_port=smtp_port))
    )
    auth = AuthService(sessionmaker(store.engine, expire_on_commit=False))
    ops = Principal(
        auth.add_user("ops", Role.OPERATOR, email="ops@example.org", webhook_url=hook),
        "ops",
        Role.OPERATOR,
    )
    auth.add_user("ann", Role.USER, email="ann@example.org")
    auth.add_user("bob", Role.USER)  # no address: not mailed
    agent = Principal(auth.add_user("a", Role.AGENT), "a", Role.AGENT)

    lab.farm.broadcast(ops, "the farm stops at 18:00 for a firmware upgrade", hours=2)
    _wait(lambda: len(mailbox.messages) == 2)
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == ["ann@example.org", "ops@example.org"]
    assert "firmware upgrade" in mailbox.messages[0].content.decode()
    assert [b["message"] for b in lab.farm.broadcasts()] == [
        "the farm stops at 18:00 for a firmware upgrade"
    ]

    (target,) = lab.register_agent(agent, "a", "test", [LocalCpuTarget().describe().model_dump()])
    lab.farm.request_check(ops, target)
    lab.sweep()
    check = lab.lease(agent, "a", [target])
    assert check is not None and check.definition["name"] == "health-check"
    lab.finish(check.job_id, check.epoch, None, "infrastructure", "no /dev/ttyACM0")
    _wait(lambda: len(mailbox.messages) == 3 and received)
    mail = mailbox.messages[2]
    assert mail.rcpt_tos == ["ops@example.org"]
    assert f"target {target} is bad" in mail.content.decode()
    assert received[0]["event"] == "target.bad" and received[0]["target"] == target
