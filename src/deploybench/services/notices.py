"""Notices (REQ-00018): when a campaign ends, tell its owner; when a target goes bad or
offline, tell the operators; broadcasts to every user. By e-mail and/or a webhook.
Failures to notify are logged, never fatal: the results are safe in the store."""

from __future__ import annotations

import json
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("deploybench.notices")


class NoticeSettings(BaseModel):
    """Where notices go; everything off by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    smtp_host: str | None = Field(default=None, description="SMTP server; None: no e-mail.")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="deploybench@localhost", description="Sender address.")
    smtp_starttls: bool = Field(default=False)
    smtp_user: str | None = None
    smtp_password: str | None = None
    webhook_url: str | None = Field(
        default=None, description="Also POST every notice here (besides the owner's webhook)."
    )
    timeout: float = Field(default=10.0, gt=0)


@dataclass(frozen=True)
class CampaignNotice:
    """What is said when a campaign ends."""

    campaign: str
    owner: str
    email: str | None
    webhook: str | None
    jobs: Sequence[dict[str, Any]]

    @property
    def outcome(self) -> str:
        """'succeeded' when every job did, else 'failed'."""
        return "succeeded" if all(j["state"] == "succeeded" for j in self.jobs) else "failed"

    def payload(self) -> dict[str, Any]:
        """The webhook body."""
        return {
            "event": "campaign.finished",
            "campaign": self.campaign,
            "owner": self.owner,
            "outcome": self.outcome,
            "jobs": list(self.jobs),
        }

    def text(self) -> str:
        """The e-mail body."""
        lines = [f"Campaign {self.campaign} of {self.owner} has {self.outcome}.", ""]
        for job in self.jobs:
            extra = f" run {job['run_id']}" if job.get("run_id") else ""
            error = f" ({job['failure_kind']}: {job['error']})" if job.get("error") else ""
            lines.append(f"- {job['name']}: {job['state']}{extra}{error}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Notice:
    """Any message of the lab: to some e-mail addresses and webhooks."""

    subject: str
    text: str
    payload: dict[str, Any]
    emails: Sequence[str] = ()
    webhooks: Sequence[str] = ()


def campaign_notice(notice: CampaignNotice) -> Notice:
    """A campaign's end, as a :class:`Notice` to its owner."""
    return Notice(
        subject=f"[deploybench] campaign {notice.campaign} {notice.outcome}",
        text=notice.text(),
        payload=notice.payload(),
        emails=[notice.email] if notice.email else [],
        webhooks=[notice.webhook] if notice.webhook else [],
    )


class Notifier:
    """Sends notices by SMTP and webhook, as configured."""

    def __init__(self, settings: NoticeSettings) -> None:
        self.settings = settings

    def send(self, notice: CampaignNotice) -> list[str]:
        """Deliver a campaign notice; returns the channels that worked (for logs and tests)."""
        return self.announce(campaign_notice(notice))

    def announce(self, notice: Notice) -> list[str]:
        """Deliver any notice: one mail per address, one POST per webhook (plus the lab's)."""
        done: list[str] = []
        if self.settings.smtp_host:
            for address in dict.fromkeys(notice.emails):
                try:
                    self._mail(notice, address)
                    done.append("email")
                except (OSError, smtplib.SMTPException) as exc:
                    log.warning("could not e-mail %s (%s): %s", address, notice.subject, exc)
        urls = [*notice.webhooks, self.settings.webhook_url]
        for url in dict.fromkeys(u for u in urls if u):
            try:
                response = httpx.post(
                    url,
                    content=json.dumps(notice.payload),
                    headers={"Content-Type": "application/json"},
                    timeout=self.settings.timeout,
                )
                response.raise_for_status()
                done.append(f"webhook {url}")
            except httpx.HTTPError as exc:
                log.warning("webhook %s failed (%s): %s", url, notice.subject, exc)
        return done

    def _mail(self, notice: Notice, address: str) -> None:
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = address
        message["Subject"] = notice.subject
        message.set_content(notice.text)
        host, port = self.settings.smtp_host, self.settings.smtp_port
        assert host is not None
        with smtplib.SMTP(host, port, timeout=self.settings.timeout) as smtp:
            if self.settings.smtp_starttls:
                smtp.starttls()
            if self.settings.smtp_user and self.settings.smtp_password:
                smtp.login(self.settings.smtp_user, self.settings.smtp_password)
            smtp.send_message(message)
