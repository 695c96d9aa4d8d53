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
from reconciler.core.notes import encode_line
from reconciler.core.records import outcome_detail, run_line, run_status
from reconciler.errors import FastflowError
from reconciler.model.notes import StatusLine
from reconciler.model.runs import RunOutcome, RunRequest, RunState

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

    async def finished(self, request: RunRequest, outcome: RunOutcome, log_tail: list[str]) -> None:
        now = datetime.now(UTC)
        line = run_line(request, outcome, now, log_tail=log_tail)
        status = run_status(
            request.pipeline,
            outcome.state,
            now,
            detail=outcome_detail(outcome),
            target_url=self.run_url(request.run_id),
        )
        await self._write(request.commit, [encode_line(line), encode_line(status)], status)

    async def _write(self, commit: str, lines: list[str], status: StatusLine) -> None:
        try:
            await asyncio.to_thread(self.store.append, {commit: lines})
        except (FastflowError, OSError) as exc:
            logger.error("could not record on %s: %s", commit[:12], exc)
        if self.poster is not None:
            await asyncio.to_thread(self.poster.post, commit, status)
