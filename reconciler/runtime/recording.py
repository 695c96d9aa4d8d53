"""Record runs where people look: the commit's note (run line + ``fastflow/run/<pipeline>``
status) and, when configured, the forge's commit status API. Recording failures are logged and
never fail the run; a forge that does not answer never delays the note.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from reconciler.adapters.forge import StatusPoster
from reconciler.adapters.gitnotes import NoteStore
from reconciler.core.notes import encode_line, parse_lines
from reconciler.core.records import outcome_detail, run_line, run_status
from reconciler.core.runids import make_run_id
from reconciler.errors import FastflowError
from reconciler.model.notes import RunLine, StatusLine
from reconciler.model.runs import RunOutcome, RunRequest, RunState, Trigger

logger = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self, store: NoteStore, poster: StatusPoster | None = None, site_url: str | None = None
    ) -> None:
        self.store = store
        self.poster = poster
        self.site_url = site_url.rstrip("/") if site_url else None

    def run_url(self, run_id: str) -> str | None:
        return f"{self.site_url}/#/runs/{run_id}" if self.site_url else None

    async def started(self, request: RunRequest) -> None:
        status = run_status(
            request.pipeline,
            RunState.RUNNING,
            datetime.now(UTC),
            target_url=self.run_url(request.run_id),
        )
        await self._write(request.commit, [encode_line(status)], status)

    async def finished(
        self,
        request: RunRequest,
        outcome: RunOutcome,
        log_tail: list[str],
        extra: dict[str, object] | None = None,
    ) -> None:
        now = datetime.now(UTC)
        line = run_line(request, outcome, now, log_tail=log_tail)
        if extra:
            line = RunLine.model_validate(line.model_dump() | extra)
        status = run_status(
            request.pipeline,
            outcome.state,
            now,
            detail=outcome_detail(outcome),
            target_url=self.run_url(request.run_id),
        )
        await self._write(request.commit, [encode_line(line), encode_line(status)], status)

    async def status(self, commit: str, pipeline: str, state: RunState, run_id: str) -> None:
        """A ``fastflow/run/<pipeline>`` status alone (``pending`` while queued)."""
        status = run_status(pipeline, state, datetime.now(UTC), target_url=self.run_url(run_id))
        await self._write(commit, [encode_line(status)], status)

    async def skipped(self, request: RunRequest, outcome: RunOutcome) -> None:
        """A run line for a run that was not started; the pipeline's status is left as it is."""
        line = run_line(request, outcome, datetime.now(UTC))
        try:
            await asyncio.to_thread(self.store.append, {request.commit: [encode_line(line)]})
        except (FastflowError, OSError) as exc:
            logger.error("could not record on %s: %s", request.commit[:12], exc)

    async def missed(
        self, commit: str, pipeline: str, schedule: str, ticks: list[datetime], count: int
    ) -> None:
        """One ``missed`` run line for the ticks of one schedule that did not run."""
        last = ticks[-1] if ticks else datetime.now(UTC)
        line = RunLine.model_validate(
            {
                "at": datetime.now(UTC),
                "run_id": make_run_id(pipeline, Trigger.SCHEDULE, last),
                "pipeline": pipeline,
                "trigger": Trigger.SCHEDULE.value,
                "state": RunState.MISSED.value,
                "scheduled_for": last,
                "schedule": schedule,
                "missed_count": count,
                "first_missed": ticks[0] if ticks else None,
                "message": f"{count} tick(s) missed (starting_deadline or the missed policy)",
            }
        )
        try:
            await asyncio.to_thread(self.store.append, {commit: [encode_line(line)]})
        except (FastflowError, OSError) as exc:
            logger.error("could not record missed ticks on %s: %s", commit[:12], exc)

    async def recorded(self, commit: str, run_id: str, attempt: int) -> bool:
        """Whether the note of ``commit`` already has the final line of this attempt."""
        text = await asyncio.to_thread(self.store.read, commit)
        return any(
            isinstance(line, RunLine) and line.run_id == run_id and line.attempt == attempt
            for line in parse_lines(text)
        )

    async def statuses(self, statuses: list[tuple[str, StatusLine]]) -> None:
        """Several statuses (a pass's validate and apply) in one notes commit."""
        grouped: dict[str, list[str]] = {}
        for commit, status in statuses:
            grouped.setdefault(commit, []).append(encode_line(status))
        try:
            await asyncio.to_thread(self.store.append, grouped)
        except (FastflowError, OSError) as exc:
            logger.error("could not record statuses: %s", exc)
        if self.poster is not None:
            for commit, status in statuses:
                await asyncio.to_thread(self.poster.post, commit, status)

    async def _write(self, commit: str, lines: list[str], status: StatusLine) -> None:
        try:
            await asyncio.to_thread(self.store.append, {commit: lines})
        except (FastflowError, OSError) as exc:
            logger.error("could not record on %s: %s", commit[:12], exc)
        if self.poster is not None:
            await asyncio.to_thread(self.poster.post, commit, status)
