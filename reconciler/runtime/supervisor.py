"""The run supervisor: admits runs by each pipeline's ``concurrency`` policy, queues them behind a
global limit, runs them, retries failed attempts, records every outcome, and tells the rest of
the reconciler when a run is final (for ``after:`` triggers).

Per pipeline, when a run is already active: ``skip`` records the new one as skipped; ``queue``
keeps at most one waiting (a further one is skipped); ``replace`` cancels the active run(s) and
starts the new one; ``allow`` runs both. Globally, at most ``max_parallel`` runs execute; the
others wait in arrival order (nothing due is ever dropped silently: skips are recorded).

Each run: ``pending`` status when queued and when started, the final status and a run line in the
note at the end; log lines go to the archive and the bus, masked. A failed attempt (failed,
timed out, oom, error) with retries left becomes a new attempt of the same run id after
``delay * backoff^(n-1)`` (at most ``max_delay``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import pygit2

from reconciler.adapters import workspaces
from reconciler.adapters.logarchive import LogArchive, LogWriter
from reconciler.core.commands import make_request
from reconciler.core.redacting import Redactor
from reconciler.core.runids import make_run_id
from reconciler.executors.base import Executor, RunHandle
from reconciler.model.events import (
    LOG_LINE,
    RUN_FINISHED,
    RUN_QUEUED,
    RUN_SKIPPED,
    RUN_STARTED,
    STATS_SAMPLED,
)
from reconciler.model.runs import (
    LogLine,
    ManagedRun,
    RunOutcome,
    RunRequest,
    RunState,
    Trigger,
)
from reconciler.model.specs import ConcurrencyPolicy
from reconciler.runtime.activeruns import ActiveRun, Applied, RunIntent
from reconciler.runtime.bus import Bus
from reconciler.runtime.clock import Clock
from reconciler.runtime.recording import Recorder
from reconciler.runtime.runs import error_outcome, execute, supervise

logger = logging.getLogger(__name__)
SAMPLE_INTERVAL_S = 1.0
RETRYABLE = frozenset({RunState.FAILED, RunState.TIMED_OUT, RunState.OOM, RunState.ERROR})


FinalHook = Callable[[ActiveRun, RunOutcome], Awaitable[None]]


class Supervisor:
    def __init__(
        self,
        *,
        executor: Executor,
        recorder: Recorder,
        bus: Bus,
        archive: LogArchive,
        repo_path: str,
        workspaces_root: Path,
        default_image: str,
        clock: Clock,
        max_parallel: int = 4,
        on_final: FinalHook | None = None,
    ) -> None:
        self.executor = executor
        self.recorder = recorder
        self.bus = bus
        self.archive = archive
        self.repo = pygit2.Repository(repo_path)
        self.workspaces_root = workspaces_root
        self.default_image = default_image
        self.clock = clock
        self.on_final = on_final
        self._slots = asyncio.Semaphore(max_parallel)
        self._max_parallel = max_parallel
        self._active: dict[str, ActiveRun] = {}
        self._waiting: dict[str, deque[ActiveRun]] = {}
        self._recent: deque[ActiveRun] = deque(maxlen=500)
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = True
        self._seen: set[str] = set()
        self._idle = asyncio.Event()

    # -- views -----------------------------------------------------------------------------

    def runs(self) -> list[ActiveRun]:
        """Active, waiting and recently finished runs, newest first."""
        current = list(self._active.values()) + [r for q in self._waiting.values() for r in q]
        ids = {r.run_id for r in current}
        return current + [r for r in reversed(self._recent) if r.run_id not in ids]

    def find(self, run_id: str) -> ActiveRun | None:
        return next((r for r in self.runs() if r.run_id == run_id), None)

    @property
    def queue_length(self) -> int:
        waiting = sum(len(q) for q in self._waiting.values())
        return sum(1 for r in self._active.values() if r.state is RunState.QUEUED) + waiting

    def set_max_parallel(self, value: int) -> None:
        """Raise or lower the global limit (``fastflow.yaml`` settings changed)."""
        delta = value - self._max_parallel
        self._max_parallel = value
        for _ in range(max(delta, 0)):
            self._slots.release()
        for _ in range(max(-delta, 0)):
            self._spawn(self._slots.acquire())  # taken back as running runs finish

    def mark_seen(self, run_ids: set[str]) -> None:
        """Run ids already recorded (from the notes): never run them again."""
        self._seen |= run_ids

    # -- admission -------------------------------------------------------------------------

    async def submit(self, intent: RunIntent, applied: Applied) -> str | None:
        """Admit a run; returns its id, or ``None`` when it was skipped or already ran."""
        run_id = make_run_id(intent.pipeline, intent.trigger, intent.key)
        if (
            not self._accepting
            or run_id in self._seen
            or run_id in self._active
            or self._waiting_id(run_id)
        ):
            return None
        self._seen.add(run_id)
        run = ActiveRun(run_id=run_id, intent=intent, applied=applied)
        policy = applied.pipeline.spec.concurrency
        busy = [r for r in self._active.values() if r.intent.pipeline == intent.pipeline]
        if busy and intent.catch_up:
            self._waiting.setdefault(intent.pipeline, deque()).append(run)
            await self._queued(run)
            return run_id
        if busy and policy is ConcurrencyPolicy.SKIP:
            await self._skip(run, f"skipped: {busy[0].run_id} is still running (concurrency: skip)")
            return None
        if busy and policy is ConcurrencyPolicy.QUEUE:
            if self._waiting.get(intent.pipeline):
                await self._skip(run, "skipped: one run is already waiting (concurrency: queue)")
                return None
            self._waiting.setdefault(intent.pipeline, deque()).append(run)
            await self._queued(run)
            return run_id
        if busy and policy is ConcurrencyPolicy.REPLACE:
            for other in busy:
                logger.info("run %s replaces %s", run_id, other.run_id)
                other.cancel.set()
        self._start(run)
        await self._queued(run)
        return run_id

    def _waiting_id(self, run_id: str) -> bool:
        return any(r.run_id == run_id for q in self._waiting.values() for r in q)

    async def _queued(self, run: ActiveRun) -> None:
        self.bus.publish(RUN_QUEUED, run.view(), run_id=run.run_id)

    async def _skip(self, run: ActiveRun, reason: str) -> None:
        run.state = RunState.SKIPPED
        now = self.clock.now()
        run.finished_at = now
        request = self._request(run, workspace="")
        outcome = RunOutcome(
            run_id=run.run_id,
            attempt=1,
            state=RunState.SKIPPED,
            message=reason,
            image=request.image,
        )
        run.outcome = outcome
        self._recent.append(run)
        await self.recorder.skipped(request, outcome)
        self.bus.publish(RUN_SKIPPED, run.view(), run_id=run.run_id)

    def _start(self, run: ActiveRun) -> None:
        self._active[run.run_id] = run
        self._spawn(self._lifecycle(run))

    def _spawn(self, coro: Awaitable[object]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one run ---------------------------------------------------------------------------

    def _request(self, run: ActiveRun, workspace: str) -> RunRequest:
        request = make_request(
            run.applied.pipeline,
            run_id=run.run_id,
            commit=run.applied.commit,
            trigger=Trigger.RETRY if run.attempt > 1 else run.intent.trigger,
            workspace=workspace,
            default_image=self.default_image,
            attempt=run.attempt,
            args=run.intent.args,
            extra_env=run.intent.extra_env,
            scheduled_for=run.intent.scheduled_for,
            schedule=run.intent.schedule,
        )
        return request

    async def _lifecycle(self, run: ActiveRun) -> None:
        try:
            while True:
                outcome = await self._attempt(run)
                delay = self._retry_delay(run, outcome)
                if delay is None or run.cancel.is_set():
                    break
                logger.info(
                    "run %s attempt %d %s; retrying in %.0fs",
                    run.run_id,
                    run.attempt,
                    outcome.state,
                    delay,
                )
                run.attempt += 1
                run.state = RunState.QUEUED
                await self.clock.sleep(delay)
            await self._final(run, outcome)
        except asyncio.CancelledError:
            raise  # shutdown: the container (if any) keeps running and is adopted at the next start
        except Exception:
            logger.exception("supervising run %s failed", run.run_id)
            self._active.pop(run.run_id, None)
            self._idle.set()

    async def _attempt(self, run: ActiveRun, handle: RunHandle | None = None) -> RunOutcome:
        if handle is None:
            await self.recorder.status(
                run.applied.commit, run.intent.pipeline, RunState.QUEUED, run.run_id
            )
        async with self._slots:
            if run.cancel.is_set() and handle is None:
                request = self._request(run, workspace="")
                outcome = RunOutcome(
                    run_id=run.run_id,
                    attempt=run.attempt,
                    state=RunState.CANCELLED,
                    message="cancelled before it started",
                    image=request.image,
                )
            else:
                outcome = await self._execute(run, handle)
        run.outcome = outcome
        return outcome

    async def _execute(self, run: ActiveRun, handle: RunHandle | None) -> RunOutcome:
        try:
            workspace = await asyncio.to_thread(
                workspaces.materialize,
                self.repo,
                run.applied.pipeline.tree_id,
                self.workspaces_root,
            )
        except Exception as exc:  # noqa: BLE001  (a broken workspace is this run's error, not the loop's)
            return error_outcome(self._request(run, ""), f"cannot write the workspace: {exc}")
        request = self._request(run, str(workspace))
        run.state, run.started_at = RunState.RUNNING, self.clock.now()
        await self.recorder.started(request)
        self.bus.publish(RUN_STARTED, run.view(), run_id=run.run_id)
        logger.info(
            "run %s (%s, %s, attempt %d) started",
            run.run_id,
            run.intent.pipeline,
            request.trigger.value,
            run.attempt,
        )
        writer = await asyncio.to_thread(
            self.archive.writer, run.intent.pipeline, run.run_id, run.attempt
        )
        sink = self._sink(run, writer)
        samplers: list[asyncio.Task[None]] = []

        def sample(started: RunHandle) -> None:
            samplers.append(asyncio.create_task(self._sample(run, started)))

        try:
            if handle is None:
                outcome = await execute(
                    self.executor, request, sink, run.applied.secrets, run.cancel, on_start=sample
                )
            else:
                sample(handle)
                redactor = Redactor(v.reveal() for v in run.applied.secrets.values())
                outcome = await supervise(self.executor, handle, sink, redactor, run.cancel)
        finally:
            writer.close()
            for task in samplers:
                task.cancel()
        await self.recorder.finished(request, outcome, list(run.tail), run.resources())
        logger.info(
            "run %s (%s, %s, attempt %d) %s in %.2fs%s",
            run.run_id,
            run.intent.pipeline,
            request.trigger.value,
            run.attempt,
            outcome.state.value,
            outcome.duration_s or 0.0,
            f": {outcome.message}" if outcome.message else "",
        )
        return outcome

    async def _sample(self, run: ActiveRun, handle: RunHandle) -> None:
        """Resource readings about once a second while the attempt runs: published live, and the
        peak memory and CPU time kept for the run line."""
        run.memory_limit_bytes = run.applied.pipeline.spec.resources.memory
        while True:
            found = await self.executor.stats(handle)
            if found is not None:
                run.last_sample = found
                run.peak_memory_bytes = max(
                    run.peak_memory_bytes, found.memory_peak_bytes, found.memory_bytes
                )
                run.cpu_seconds = max(run.cpu_seconds, found.cpu_seconds)
                run.memory_limit_bytes = found.memory_limit_bytes or run.memory_limit_bytes
                self.bus.publish(
                    STATS_SAMPLED,
                    {
                        "memory_bytes": found.memory_bytes,
                        "memory_limit_bytes": run.memory_limit_bytes,
                        "peak_memory_bytes": run.peak_memory_bytes,
                        "cpu_seconds": round(found.cpu_seconds, 3),
                        "at": found.at.isoformat(),
                    },
                    run_id=run.run_id,
                )
            await asyncio.sleep(
                SAMPLE_INTERVAL_S
            )  # real time: containers live in it, not in `clock`

    def _sink(self, run: ActiveRun, writer: LogWriter) -> Callable[[LogLine], None]:
        def sink(line: LogLine) -> None:
            run.tail.append(line.text)
            writer.write(line)
            self.bus.publish(
                LOG_LINE,
                {
                    "stream": line.stream.value,
                    "at": line.at.isoformat(),
                    "text": line.text,
                    "seq": line.seq,
                    "attempt": run.attempt,
                },
                run_id=run.run_id,
            )

        return sink

    def _retry_delay(self, run: ActiveRun, outcome: RunOutcome) -> float | None:
        retries = run.applied.pipeline.spec.retries
        if outcome.state not in RETRYABLE or run.attempt > retries.max:
            return None
        delay = retries.delay.total_seconds() * retries.backoff ** (run.attempt - 1)
        return min(delay, retries.max_delay.total_seconds())

    async def _final(self, run: ActiveRun, outcome: RunOutcome) -> None:
        run.state = outcome.state
        run.finished_at = self.clock.now()
        self._active.pop(run.run_id, None)
        self._recent.append(run)
        self.bus.publish(RUN_FINISHED, run.view(), run_id=run.run_id)
        waiting = self._waiting.get(run.intent.pipeline)
        if waiting:
            self._start(waiting.popleft())
        if not waiting:
            self._waiting.pop(run.intent.pipeline, None)
        if self.on_final is not None:
            await self.on_final(run, outcome)
        if not self._active and not self._waiting:
            self._idle.set()

    # -- adoption and shutdown ---------------------------------------------------------------

    async def adopt(self, managed: ManagedRun, applied: Applied) -> None:
        """Take over a container found at start-up: record it if it ended, follow it if not."""
        handle = await self.executor.adopt(managed)
        intent = RunIntent(
            pipeline=managed.pipeline,
            trigger=managed.trigger,
            key=managed.run_id,
            scheduled_for=managed.scheduled_for,
            reason="adopted after a restart",
        )
        run = ActiveRun(
            run_id=managed.run_id, intent=intent, applied=applied, attempt=managed.attempt
        )
        self._seen.add(run.run_id)
        self._active[run.run_id] = run
        if not managed.running and await self.recorder.recorded(
            managed.commit, managed.run_id, managed.attempt
        ):
            logger.info(
                "run %s attempt %d was recorded before the restart; removing it",
                run.run_id,
                run.attempt,
            )
            await self.executor.remove(handle)
            self._active.pop(run.run_id, None)
            return
        self._spawn(self._adopted(run, handle))

    async def _adopted(self, run: ActiveRun, handle: RunHandle) -> None:
        outcome = await self._attempt(run, handle)
        delay = self._retry_delay(run, outcome)
        if delay is not None and not run.cancel.is_set():
            run.attempt += 1
            run.state = RunState.QUEUED
            await self.clock.sleep(delay)
            await self._lifecycle(run)
            return
        await self._final(run, outcome)

    async def shutdown(self) -> None:
        """Stop admitting and supervising; running containers keep running (adopted next start)."""
        self._accepting = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait until no run is active or waiting (tests and one-shot use)."""
        while self._active or self._waiting:
            self._idle.clear()
            await asyncio.wait_for(self._idle.wait(), timeout_s)
