"""The lines of a ``refs/notes/fastflow`` note (ARCHITECTURE.md §3, contract).

A note is JSON Lines: compact, keys sorted, ``at`` first. Readers must survive newer writers, so
both line models keep fields they do not know (``extra="allow"``) and unknown ``type`` values are
kept as plain dicts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CONTEXT_VALIDATE = "fastflow/validate"
CONTEXT_APPLY = "fastflow/apply"
CONTEXT_RUN_PREFIX = "fastflow/run/"


def run_context(pipeline: str) -> str:
    return f"{CONTEXT_RUN_PREFIX}{pipeline}"


class StatusState(StrEnum):
    """GitHub's commit status vocabulary (Gitea/Forgejo accept the same words)."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


class StatusLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    at: datetime
    type: Literal["status"] = "status"
    context: str
    state: StatusState
    description: str = ""
    target_url: str | None = None


class RunLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    at: datetime
    type: Literal["run"] = "run"
    run_id: str
    pipeline: str
    trigger: str
    attempt: int = 1
    state: str
    exit_code: int | None = None
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    setup_s: float | None = None
    image: str = ""
    image_id: str = ""
    uv_version: str = ""
    message: str = ""
    log_tail: list[str] = Field(default_factory=list)


NoteLine = StatusLine | RunLine
