"""Turn run outcomes into note lines and commit statuses. Pure (``now`` is passed in)."""

from __future__ import annotations

from datetime import datetime

from reconciler.model.notes import RunLine, StatusLine, StatusState, run_context
from reconciler.model.runs import RunOutcome, RunRequest, RunState

LOG_TAIL_LINES = 20
_STATUS_OF = {
    RunState.QUEUED: StatusState.PENDING,
    RunState.RUNNING: StatusState.PENDING,
    RunState.SUCCEEDED: StatusState.SUCCESS,
    RunState.FAILED: StatusState.FAILURE,
    RunState.TIMED_OUT: StatusState.FAILURE,
    RunState.OOM: StatusState.FAILURE,
    RunState.MISSED: StatusState.FAILURE,
    RunState.SKIPPED: StatusState.SUCCESS,
    RunState.CANCELLED: StatusState.ERROR,
    RunState.ERROR: StatusState.ERROR,
}


def run_line(
    request: RunRequest,
    outcome: RunOutcome,
    now: datetime,
    *,
    log_tail: list[str] | None = None,
    scheduled_for: datetime | None = None,
) -> RunLine:
    return RunLine.model_validate(
        dict(
            at=now,
            run_id=request.run_id,
            pipeline=request.pipeline,
            trigger=request.trigger.value,
            attempt=request.attempt,
            state=outcome.state.value,
            exit_code=outcome.exit_code,
            scheduled_for=scheduled_for or request.scheduled_for,
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            duration_s=outcome.duration_s,
            setup_s=outcome.setup_s,
            image=outcome.image or request.image,
            image_id=outcome.image_id,
            uv_version=outcome.uv_version,
            message=outcome.message,
            log_tail=list((log_tail or [])[-LOG_TAIL_LINES:]),
            **({"schedule": request.schedule} if request.schedule else {}),
        )
    )


def run_status(
    pipeline: str,
    state: RunState,
    now: datetime,
    *,
    detail: str = "",
    target_url: str | None = None,
) -> StatusLine:
    """The ``fastflow/run/<pipeline>`` status for a run in ``state``."""
    description = state.value.replace("_", " ")
    if detail:
        description = f"{description} ({detail})"
    return StatusLine(
        at=now,
        context=run_context(pipeline),
        state=_STATUS_OF[state],
        description=description[:140],
        target_url=target_url,
    )


def outcome_detail(outcome: RunOutcome) -> str:
    parts = []
    if outcome.exit_code is not None and outcome.state is not RunState.SUCCEEDED:
        parts.append(f"exit {outcome.exit_code}")
    if outcome.duration_s is not None:
        parts.append(f"{outcome.duration_s:.1f}s")
    return ", ".join(parts)
