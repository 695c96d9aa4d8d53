"""Run one attempt to its end: launch (or adopt), stream log lines, wait with the deadline, collect
the outcome, remove the container. Every exit path yields an outcome: a run that cannot launch is
an ``error`` outcome with the reason, not an exception.

Cancelling the *task* (shutdown, SIGTERM) leaves the container running, to be adopted by the next
start; stopping the *run* is the ``cancel`` event (``concurrency: replace``, Ctrl-C).
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
CANCEL_WAIT_S = 30.0


async def execute(
    executor: Executor,
    request: RunRequest,
    on_line: LineSink,
    secrets: Mapping[str, SecretValue] | None = None,
    cancel: asyncio.Event | None = None,
    on_start: Callable[[RunHandle], None] | None = None,
) -> RunOutcome:
    """Run ``request`` once; ``on_line`` receives every log line, masked, in arrival order.

    Secret values go to the executor as environment variables and are masked (``***``) in every
    line and in the outcome's message before anything else sees them.
    """
    redactor = Redactor(v.reveal() for v in (secrets or {}).values())
    try:
        handle = await executor.launch(request, {k: v.reveal() for k, v in (secrets or {}).items()})
    except (LaunchError, TemporaryError) as exc:
        message = redactor.redact(str(exc))  # an engine's error text could quote the environment
        logger.warning("run %s could not start: %s", request.run_id, message)
        return error_outcome(request, message)
    if on_start is not None:
        on_start(handle)
    return await supervise(executor, handle, on_line, redactor, cancel)


async def supervise(
    executor: Executor,
    handle: RunHandle,
    on_line: LineSink,
    redactor: Redactor | None = None,
    cancel: asyncio.Event | None = None,
) -> RunOutcome:
    """Follow a started (or adopted) attempt to its outcome, then remove it."""
    redactor = redactor or Redactor()
    request = handle.request
    follower = asyncio.create_task(_follow(executor, handle, _masking(on_line, redactor)))
    try:
        outcome = await _wait(executor, handle, request.timeout_s, cancel)
    except TemporaryError as exc:
        follower.cancel()
        return error_outcome(request, redactor.redact(str(exc)))
    except asyncio.CancelledError:
        follower.cancel()  # shutdown: the container keeps running and is adopted next start
        raise
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(follower, timeout=10)  # the last lines, after the container ended
    await executor.remove(handle)
    return (
        outcome.model_copy(update={"message": redactor.redact(outcome.message)})
        if redactor
        else outcome
    )


async def _wait(
    executor: Executor, handle: RunHandle, timeout_s: float, cancel: asyncio.Event | None
) -> RunOutcome:
    waiter = asyncio.create_task(executor.wait(handle, timeout_s))
    if cancel is None:
        return await waiter
    stopper = asyncio.create_task(cancel.wait())
    try:
        done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        waiter.cancel()
        stopper.cancel()
        raise
    if waiter in done:
        stopper.cancel()
        return waiter.result()
    await executor.cancel(handle)
    return await asyncio.wait_for(waiter, CANCEL_WAIT_S + 5)


def _masking(on_line: LineSink, redactor: Redactor) -> LineSink:
    if not redactor:
        return on_line
    return lambda line: on_line(line.model_copy(update={"text": redactor.redact(line.text)}))


async def _follow(executor: Executor, handle: RunHandle, on_line: LineSink) -> None:
    async for line in executor.logs(handle):
        on_line(line)


def error_outcome(request: RunRequest, message: str) -> RunOutcome:
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
