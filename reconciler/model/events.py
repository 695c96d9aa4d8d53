"""Events on the in-process bus (past-tense facts), as the status site and SSE clients see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

COMMIT_FETCHED = "commit_fetched"
PASS_COMPLETED = "pass_completed"
RUN_QUEUED = "run_queued"
RUN_STARTED = "run_started"
RUN_FINISHED = "run_finished"
RUN_SKIPPED = "run_skipped"
TICK_MISSED = "tick_missed"
LOG_LINE = "log_line"
STATS_SAMPLED = "stats_sampled"


class Event(BaseModel):
    """``id`` increases by one per event of this process; SSE uses it as the event id."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: str
    at: datetime
    run_id: str | None = None
    data: dict[str, Any]
