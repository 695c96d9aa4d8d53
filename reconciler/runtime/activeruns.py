"""What the supervisor knows about runs: a pipeline as applied (``Applied``), a request for a run
(``RunIntent``), and a run in flight or recently ended (``ActiveRun``, with its public view)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.core.records import LOG_TAIL_LINES
from reconciler.model.desired import Pipeline
from reconciler.model.runs import ResourceSample, RunOutcome, RunState, Trigger
from reconciler.model.secrets import SecretValue


@dataclass(frozen=True)
class Applied:
    """A pipeline as applied: its spec, the commit its code comes from, its secrets."""

    pipeline: Pipeline
    commit: str
    secrets: dict[str, SecretValue] = field(default_factory=dict)


@dataclass(frozen=True)
class RunIntent:
    pipeline: str
    trigger: Trigger
    key: str | datetime  # the tick, the commit, or the upstream run id
    scheduled_for: datetime | None = None
    args: list[str] | None = None
    extra_env: dict[str, str] | None = None
    reason: str = ""
    schedule: str | None = None  # the schedule's key, for scheduled runs
    catch_up: bool = False  # one of several missed ticks run together: they queue, never skip


@dataclass
class ActiveRun:
    run_id: str
    intent: RunIntent
    applied: Applied
    attempt: int = 1
    state: RunState = RunState.QUEUED
    queued_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: RunOutcome | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    peak_memory_bytes: int = 0
    cpu_seconds: float = 0.0
    memory_limit_bytes: int = 0
    last_sample: ResourceSample | None = None

    def resources(self) -> dict[str, object]:
        if not self.memory_limit_bytes:
            return {}
        return {
            "peak_memory_bytes": self.peak_memory_bytes,
            "cpu_seconds": round(self.cpu_seconds, 3),
            "memory_limit_bytes": self.memory_limit_bytes,
        }

    def view(self) -> dict[str, object]:
        """What the status site shows (no env, no secrets)."""
        outcome = self.outcome
        return {
            "run_id": self.run_id,
            "pipeline": self.intent.pipeline,
            "trigger": self.intent.trigger.value,
            "attempt": self.attempt,
            "state": self.state.value,
            "commit": self.applied.commit,
            "scheduled_for": self.intent.scheduled_for.isoformat()
            if self.intent.scheduled_for
            else None,
            "queued_at": self.queued_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "exit_code": outcome.exit_code if outcome else None,
            "duration_s": outcome.duration_s if outcome else None,
            "setup_s": outcome.setup_s if outcome else None,
            "message": outcome.message if outcome else "",
            "reason": self.intent.reason,
            **self.resources(),
        }
