"""How the lab shares its targets: policy, shares, caps, runtime limits, reservations, health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from deploybench.scheduler.fairshare import PolicySettings


class SchedulingSettings(BaseModel):
    """Fair-share policy and limits of the lab (the ``scheduling:`` section of the server
    config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: Literal["fairshare", "fifo"] = Field(
        default="fairshare",
        description="fairshare: priority, reservation holder, soft cap, usage/share, then "
        "FIFO; fifo: priority, reservation holder, then strict submission order.",
    )
    shares: dict[str, float] = Field(
        default_factory=dict, description="Share weight per user name (default 1.0)."
    )
    soft_cap: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Fraction of one target's window a user may use before sorting behind "
        "everyone else there (only bites while others wait).",
    )
    hard_cap: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Fraction of one target's window past which a user's runs do not start "
        "there at all, even if it idles.",
    )
    window_hours: float = Field(default=24.0, gt=0, description="Sliding usage window.")
    default_max_runtime_s: float = Field(
        default=3600.0, gt=0, description="max_runtime_s of a run that declares none."
    )
    max_runtime_limit_s: float = Field(
        default=86400.0, gt=0, description="Largest max_runtime_s a run may declare."
    )
    reservation_max_hours: float = Field(default=8.0, gt=0, description="Longest reservation.")
    reservation_hours_per_week: float = Field(
        default=24.0, gt=0, description="Reserved hours per user per 7 days (of target time)."
    )
    reservation_lend_idle: bool = Field(
        default=True,
        description="Default of a reservation's lend_idle: others may use the target while "
        "its holder has nothing waiting for it.",
    )
    offline_after_s: float = Field(
        default=90.0,
        gt=0,
        description="An agent silent this long is offline; its targets need a health check.",
    )
    health_check_interval_s: float | None = Field(
        default=6 * 3600.0,
        gt=0,
        description="Idle targets are re-checked this often; None: only after failures.",
    )

    def policy_settings(self) -> PolicySettings:
        """The pure policy's view (``fifo``: no shares, no caps, equal usage for everyone)."""
        if self.policy == "fifo":
            return PolicySettings(window_s=self.window_hours * 3600.0, fifo=True)
        return PolicySettings(
            shares=dict(self.shares),
            soft_cap=self.soft_cap,
            hard_cap=self.hard_cap,
            window_s=self.window_hours * 3600.0,
        )
