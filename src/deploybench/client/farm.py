"""Client calls for operating the farm: queue view, scheduler pause, broadcasts, targets,
reservations, usage and operator job controls (mixed into :class:`~deploybench.Client`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from deploybench.client.base import BaseClient


def _target_path(name: str) -> str:
    """A target name in a URL: farm-wide names are ``agent/plugin``, and the server's route
    takes the slash as it is; everything else is percent-encoded."""
    return quote(name, safe="/")


def _when(value: datetime | str | None) -> str | None:
    """ISO 8601 text of a datetime (strings are passed as they are)."""
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


class FarmApi(BaseClient):
    """Queue, scheduler, broadcasts, targets, reservations, usage, priorities."""

    # -- queue and scheduler ------------------------------------------------------------------

    def queue(self) -> dict[str, Any]:
        """The farm now: ``{"now", "paused", "broadcasts", "targets", "running", "queued",
        "others_queued"}``; each queued run with its position, reason and estimated start."""
        answer: dict[str, Any] = self._json("GET", "/queue")
        return answer

    def scheduler(self) -> dict[str, Any]:
        """``{"paused": null | {"by", "at", "message"}, "settings": {...}}``."""
        answer: dict[str, Any] = self._json("GET", "/scheduler")
        return answer

    def scheduler_pause(self, message: str = "") -> dict[str, Any]:
        """Operators: pause the scheduler (nothing new starts; running work finishes)."""
        answer: dict[str, Any] = self._json("POST", "/scheduler/pause", json={"message": message})
        return answer

    def scheduler_resume(self) -> dict[str, Any]:
        """Operators: resume the scheduler."""
        answer: dict[str, Any] = self._json("POST", "/scheduler/resume")
        return answer

    # -- broadcasts ---------------------------------------------------------------------------

    def broadcasts(self) -> list[dict[str, Any]]:
        """Operators' messages that have not expired, newest first."""
        return list(self._json("GET", "/broadcasts"))

    def broadcast(self, message: str, hours: float | None = 24.0) -> dict[str, Any]:
        """Operators: tell every user something for ``hours`` (None: until further notice)."""
        answer: dict[str, Any] = self._json(
            "POST", "/broadcasts", json={"message": message, "hours": hours}
        )
        return answer

    # -- targets ------------------------------------------------------------------------------

    def update_target(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        maintenance: bool | None = None,
        until: datetime | str | None = None,
        message: str | None = None,
        retired: bool | None = None,
        tags: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Operators: change a target; arguments left as None stay as they are."""
        fields: dict[str, Any] = {
            "enabled": enabled,
            "maintenance": maintenance,
            "until": _when(until),
            "message": message,
            "retired": retired,
            "tags": None if tags is None else list(tags),
        }
        body = {key: value for key, value in fields.items() if value is not None}
        answer: dict[str, Any] = self._json("PATCH", f"/targets/{_target_path(name)}", json=body)
        return answer

    def check_target(self, name: str) -> dict[str, Any]:
        """Operators: a health check must pass before the target serves again."""
        answer: dict[str, Any] = self._json("POST", f"/targets/{_target_path(name)}/check")
        return answer

    # -- reservations -------------------------------------------------------------------------

    def reservations(self, all: bool = False) -> list[dict[str, Any]]:
        """The reservation calendar, soonest first (``all``: past and canceled ones too)."""
        return list(self._json("GET", "/reservations", params={"all": "true" if all else None}))

    def reserve(
        self,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        *,
        hours: float | None = None,
        target: str | None = None,
        tags: Sequence[str] | None = None,
        lend_idle: bool | None = None,
        note: str = "",
    ) -> list[dict[str, Any]]:
        """Reserve ``target``, or each target whose tags include ``tags``, from ``start``
        (None or "now": the server's now) to ``end`` or for ``hours``. All or nothing; returns
        one reservation per target."""
        body: dict[str, Any] = {"note": note}
        if start is not None and start != "now":
            body["starts_at"] = _when(start)
        if end is not None:
            body["ends_at"] = _when(end)
        if hours is not None:
            body["hours"] = hours
        if target is not None:
            body["target"] = target
        if tags:
            body["tags"] = list(tags)
        if lend_idle is not None:
            body["lend_idle"] = lend_idle
        return list(self._json("POST", "/reservations", json=body))

    def cancel_reservation(self, reservation_id: int | str) -> dict[str, Any]:
        """Cancel a reservation (its holder, or an operator)."""
        answer: dict[str, Any] = self._json("DELETE", f"/reservations/{reservation_id}")
        return answer

    # -- usage and job controls -----------------------------------------------------------------

    def usage(self, days: int = 7) -> dict[str, Any]:
        """Target time per user per day, per target, per experiment and per phase over the
        last ``days``, and the fair-share state of each user."""
        answer: dict[str, Any] = self._json("GET", "/usage", params={"days": days})
        return answer

    def set_priority(self, ident: str, priority: int) -> int:
        """Operators: set the priority of queued or held jobs (job or campaign id); returns
        how many were changed."""
        answer = self._json("POST", f"/jobs/{ident}/priority", json={"priority": priority})
        return int(answer["affected"])

    def start_now(self, ident: str) -> int:
        """Operators: put a job or campaign ahead of the queue; returns how many moved."""
        return int(self._json("POST", f"/jobs/{ident}/start")["affected"])
