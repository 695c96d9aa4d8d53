"""A plan: what applying one desired state over another would change (``fastflow plan``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model.problems import Problem


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    INVALID = "invalid"  # quarantined at head: the applied spec stays


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    before: Any = None
    after: Any = None


class ScheduleView(BaseModel):
    model_config = ConfigDict(frozen=True)

    expression: str
    timezone: str
    next_ticks: list[datetime]
    next_ticks_local: list[str]
    runs_per_day: float


class ScheduleChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    before: ScheduleView | None = None
    after: ScheduleView | None = None


class PipelineChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    kind: ChangeKind
    fields: list[FieldChange] = Field(default_factory=list)
    schedules: list[ScheduleChange] = Field(default_factory=list)
    runs_per_day_before: float = 0.0
    runs_per_day_after: float = 0.0
    secrets_added: list[str] = Field(default_factory=list)
    secrets_removed: list[str] = Field(default_factory=list)
    secrets_changed: list[str] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    base: str | None
    head: str | None
    computed_at: datetime
    changes: list[PipelineChange] = Field(default_factory=list)
    unchanged: int = 0
    settings_changes: list[FieldChange] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)  # all validation problems of head

    @property
    def empty(self) -> bool:
        return not self.changes and not self.settings_changes
