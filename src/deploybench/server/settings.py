"""Server settings (no module-level state: ``create_app`` takes them explicitly)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from deploybench.scheduler.settings import SchedulingSettings
from deploybench.services.notices import NoticeSettings


class ServerSettings(BaseModel):
    """Where the data lives and how the lab behaves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db_url: str = Field(description="SQLAlchemy URL of the lab database.")
    data_dir: Path = Field(description="Folder of the artifact store.")
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1, description="Largest upload.")
    lease_ttl: float = Field(default=30.0, gt=0, description="Seconds a lease lives unrenewed.")
    max_attempts: int = Field(default=3, ge=1, description="Attempts before a lost job fails.")
    retry_backoff: float = Field(default=2.0, ge=0, description="First retry delay (doubles).")
    sweep_interval: float = Field(
        default=2.0, gt=0, description="Sweeper period (s): leases, offline agents, health."
    )
    check_compatibility: bool = Field(
        default=True,
        description="Run the toolchain's checks against the uploaded model and the targets an "
        "experiment may be placed on at submit, and refuse impossible experiments (REQ-00025).",
    )
    notices: NoticeSettings = Field(
        default_factory=NoticeSettings, description="E-mail and webhook completion notices."
    )
    scheduling: SchedulingSettings = Field(
        default_factory=SchedulingSettings,
        description="Fair share, caps, runtime limits, reservations and target health.",
    )
