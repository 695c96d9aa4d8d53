"""Run one attempt to its end: launch, stream log lines, wait (with the spec's timeout), collect
the outcome, remove the container. Every exit path yields an outcome: a run that cannot launch
is an ``error`` outcome with the reason, not an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from reconciler.core.redacting import Redactor
from reconciler.errors import LaunchError, TemporaryError
from reconciler.executors.base import Executor, RunHandle
from reconciler.model.runs import LogLine, RunOutcome, RunRequest, RunState
from reconciler.model.secrets import SecretValue

logger = logging.getLogger(__name__)
LineSink = Callable[[LogLine], None]


async def execute(
    executor: Executor,
    request: RunRequest,
    on_line: LineSink,
    secrets: Mapping[str, SecretValue] | None = None,
) -> RunOutcome:
    """Run ``request`` once; ``on_line`` receives every log line, masked, in arrival order.

    Secret values go to the executor as environment variables and are masked (``***``) in every
    line and in the outcome's message before anything else sees them.
    """
    redactor = Redactor(v.reveal() for v in (secrets or {}).values())
    revealed = {k: v.reveal() for k, v in (secrets or {}).items()}
    outcome = await _execute(executor, request, _masking(on_line, redactor), revealed)
    return (
        outcome.model_copy(update={"message": redactor.redact(outcome.message)})
        if redactor
        else outcome
    )


def _masking(on_line: LineSink, redactor: Redactor) -> LineSink:
    if not redactor:
        return on_line
    return lambda line: on_line(line.model_copy(update={"text": redactor.redact(line.text)}))


async def _execute(
    executor: Executor, request: RunRequest, on_line: LineSink, secrets: dict[str, str]
) -> RunOutcome:
    try:
        handle = await executor.launch(request, secrets)
    except (LaunchError, TemporaryError) as exc:
        logger.warning("run %s could not start: %s", request.run_id, exc)
        return _error(request, str(exc))
    follower = asyncio.create_task(_follow(executor, handle, on_line))
    try:
        outcome = await executor.wait(handle, request.timeout_s)
    except asyncio.CancelledError:
        await executor.cancel(handle)
        await executor.wait(handle, 30)
        follower.cancel()
        await executor.remove(handle)
        raise
    except TemporaryError as exc:
        follower.cancel()
        return _error(request, str(exc))
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(follower, timeout=10)  # the last lines, after the container ended
    await executor.remove(handle)
    return outcome


async def _follow(executor: Executor, handle: RunHandle, on_line: LineSink) -> None:
    async for line in executor.logs(handle):
        on_line(line)


def _error(request: RunRequest, message: str) -> RunOutcome:
    now = datetime.now(UTC)
    return RunOutcome(
        run_id=request.run_id,
        attempt=request.attempt,
        state=RunState.ERROR,
        started_at=now,
        finished_at=now,
        duration_s=0.0,
        image=request.image,
        message=message,
    )
