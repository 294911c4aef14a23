"""The execution environment applied to every measured process."""

from __future__ import annotations

from pydantic import ByteSize, Field, field_validator

from deploybench.spec.base import SpecModel


class EnvironmentSpec(SpecModel):
    """Threads, CPU affinity, memory limit and environment variables for the worker."""

    threads: int | None = Field(
        default=None, ge=1, le=1024, description="Inference threads (intra-op). Default: runtime's."
    )
    cpu_affinity: list[int] | None = Field(
        default=None, description="CPU indices the worker is pinned to (os.sched_setaffinity)."
    )
    memory_limit: ByteSize | None = Field(
        default=None, description="Memory limit for the worker, e.g. 2GiB or 512MB."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for the worker."
    )

    @field_validator("cpu_affinity")
    @classmethod
    def _check_affinity(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must list at least one CPU index, or be omitted")
        if any(cpu < 0 for cpu in value):
            raise ValueError("CPU indices are >= 0")
        if len(set(value)) != len(value):
            raise ValueError("CPU indices must not repeat")
        return sorted(value)

    @field_validator("memory_limit")
    @classmethod
    def _check_limit(cls, value: ByteSize | None) -> ByteSize | None:
        if value is not None and value < 16 * 1024 * 1024:
            raise ValueError("must be at least 16MiB; a Python worker cannot start in less")
        return value
