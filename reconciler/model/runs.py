"""Runs: what to execute (``RunRequest``), what came out (``LogLine``, ``RunOutcome``), and what an
engine still holds (``ManagedRun``, for adoption after a restart)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model.specs import NetworkMode, Resources


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    PUSH = "push"
    AFTER = "after"
    MANUAL = "manual"
    RETRY = "retry"


class RunState(StrEnum):
    """Final states of a run (ARCHITECTURE.md §3), plus the two live ones."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    OOM = "oom"
    CANCELLED = "cancelled"
    MISSED = "missed"
    SKIPPED = "skipped"
    ERROR = "error"

    @property
    def final(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


class Stream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


class RunRequest(BaseModel):
    """Everything a backend needs to start one attempt of one run. Holds no secret values."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    pipeline: str
    commit: str
    trigger: Trigger
    attempt: int = 1
    image: str
    command: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    workspace: str  # host path of the read-only workspace (<data>/workspaces/<tree-id>)
    tree_id: str = ""
    resources: Resources = Field(default_factory=Resources)
    network: NetworkMode = NetworkMode.NONE
    timeout_s: float = 3600.0
    scheduled_for: datetime | None = None
    schedule: str | None = None  # the schedule's name or "#<index>", for scheduled runs


class LogLine(BaseModel):
    """One line of output; ``at`` is the engine's timestamp, ``seq`` orders lines within a run."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    stream: Stream
    at: datetime
    text: str
    seq: int = 0


class RunOutcome(BaseModel):
    """How an attempt ended. A failed run is data, not an exception."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    attempt: int = 1
    state: RunState
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    setup_s: float | None = None  # container start -> the user's code starting
    image: str = ""
    image_id: str = ""
    uv_version: str = ""
    message: str = ""  # why, for error / timed_out / oom / cancelled


class ManagedRun(BaseModel):
    """A container (or task) of this instance found on the engine, read back from its labels."""

    model_config = ConfigDict(frozen=True)

    ref: str  # backend reference (container id)
    run_id: str
    pipeline: str
    commit: str
    trigger: Trigger
    attempt: int
    running: bool
    timeout_s: float = 3600.0
    scheduled_for: datetime | None = None


class ResourceSample(BaseModel):
    """One reading of a running attempt's resources (the Docker stats API, about once a second)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    cpu_seconds: float  # total CPU time so far
    memory_bytes: int
    memory_peak_bytes: int  # the kernel's own high-water mark where it keeps one, else the max seen
    memory_limit_bytes: int
