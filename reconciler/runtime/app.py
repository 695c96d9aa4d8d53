"""The reconciler process: start-up -> main loop -> shutdown (``fastflow serve``).

Start-up opens the mirror and the notes, restores the applied commit, reads what the notes say
already ran (so no tick or push runs twice, and downtime is measured), adopts the containers of
this instance that outlived the last process, and runs a first pass. The main loop runs a pass
when the watched repository changes, when a webhook asks, and every ``interval_s``; a failing
source is retried with backoff while the applied state keeps running. Shutdown (SIGTERM) stops
admitting and supervising but never stops a running container: the next start adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pygit2

from reconciler.adapters import gitrepo, workspaces
from reconciler.adapters.forge import StatusPoster
from reconciler.adapters.gitnotes import NoteStore
from reconciler.adapters.gitsource import GitSource, git_auth_from_env
from reconciler.adapters.logarchive import LogArchive
from reconciler.adapters.watcher import watch_refs
from reconciler.core.notes import latest_runs
from reconciler.core.ticking import Decision
from reconciler.errors import FastflowError
from reconciler.executors.base import Executor
from reconciler.model.desired import DesiredState
from reconciler.model.events import TICK_MISSED
from reconciler.model.notes import RunLine
from reconciler.model.runs import RunOutcome, RunState, Trigger
from reconciler.model.specs import AfterCondition, Schedule
from reconciler.runtime.activeruns import ActiveRun, Applied, RunIntent
from reconciler.runtime.bus import Bus
from reconciler.runtime.clock import Clock, SystemClock
from reconciler.runtime.cron import Cron, EntryKey
from reconciler.runtime.metrics import Metrics
from reconciler.runtime.reconciling import Reconciler
from reconciler.runtime.recording import Recorder
from reconciler.runtime.supervisor import Supervisor
from reconciler.settings import Settings

logger = logging.getLogger(__name__)
FAILED_STATES = frozenset({RunState.FAILED, RunState.TIMED_OUT, RunState.OOM, RunState.ERROR})
HISTORY_RUNS = 100


@dataclass(frozen=True)
class ServeOptions:
    source: str
    branch: str = "main"
    interval_s: float = 60.0
    webhook_secret: str | None = None
    push_notes: bool = True


MAX_RETRY_S = 300.0


def fetch_wait(interval_s: float, failures: int) -> float:
    """Seconds until the next fetch: the interval; after ``failures`` failed fetches in a row
    2, 4, 8 ... s (never more than the interval, nor than 5 minutes), so an unreachable source
    is retried soon and then less often while the applied state keeps running."""
    if failures <= 0:
        return interval_s
    return min(2.0 ** min(failures, 16), MAX_RETRY_S, interval_s)


class App:
    def __init__(
        self,
        options: ServeOptions,
        settings: Settings,
        executor: Executor,
        clock: Clock | None = None,
    ) -> None:
        self.options = options
        self.settings = settings
        self.executor = executor
        self.clock = clock or SystemClock()
        data = settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.source = GitSource(options.source, data / "mirror.git", git_auth_from_env())
        self.store = NoteStore(self.source.mirror_path)
        poster = StatusPoster(settings.forge) if settings.forge else None
        self.recorder = Recorder(self.store, poster, settings.site_url)
        self.bus = Bus()
        self.archive = LogArchive(data / "logs")
        self.supervisor = Supervisor(
            executor=executor,
            recorder=self.recorder,
            bus=self.bus,
            archive=self.archive,
            repo_path=str(self.source.mirror_path),
            workspaces_root=settings.workspaces,
            default_image=settings.runner_image,
            clock=self.clock,
            on_final=self._on_final,
        )
        self.cron = Cron(self.clock, self._on_decision)
        self.reconciler = Reconciler(
            source=self.source,
            branch=options.branch,
            recorder=self.recorder,
            bus=self.bus,
            clock=self.clock,
            submit=self.supervisor.submit,
            on_applied=self._on_applied,
            state_file=data / "state.json",
        )
        self.metrics = Metrics(
            lambda: float(self.supervisor.queue_length),
            self._applied_time,
            lambda: 0.0 if self.reconciler.rejected else 1.0,
        )
        self.started_at = time.time()
        self.ready = False
        self._wake = asyncio.Event()
        self._notes_dirty = asyncio.Event()
        self._history: dict[EntryKey, datetime] = {}
        self.history: dict[
            str, list[RunLine]
        ] = {}  # the notes' newest runs per pipeline, read at start-up
        self._tasks: list[asyncio.Task[None]] = []

    # -- wiring callbacks ----------------------------------------------------------------------

    @property
    def applied(self) -> dict[str, Applied]:
        return self.reconciler.applied

    async def _on_applied(self, applied: dict[str, Applied], state: DesiredState) -> None:
        self.store.max_runs = state.settings.note_max_runs
        self.supervisor.set_max_parallel(state.settings.max_parallel_runs)
        self.cron.update({name: a.pipeline.spec for name, a in applied.items()}, self._history)
        self._history = {}
        # workspaces of what is applied and of every run still going (adopted, trailers of older commits)
        keep = {a.pipeline.tree_id for a in applied.values()}
        keep |= {r.applied.pipeline.tree_id for r in self.supervisor.runs() if not r.state.final}
        retention = state.settings.log_retention
        await asyncio.to_thread(workspaces.collect_garbage, self.settings.workspaces, keep)
        await asyncio.to_thread(
            self.archive.prune, retention.max_runs, retention.max_age.total_seconds()
        )

    async def _on_decision(
        self, pipeline: str, key: str, schedule: Schedule, decision: Decision
    ) -> None:
        applied = self.applied.get(pipeline)
        if applied is None:
            return
        for tick in decision.run:
            intent = RunIntent(
                pipeline,
                Trigger.SCHEDULE,
                tick,
                scheduled_for=tick,
                args=schedule.args,
                extra_env=dict(schedule.env),
                reason=f"schedule {key}" + (" (catching up)" if len(decision.run) > 1 else ""),
                catch_up=len(decision.run) > 1,
                schedule=key,
            )
            await self.supervisor.submit(intent, applied)
        if decision.missed_count:
            await self.recorder.missed(
                applied.commit, pipeline, key, decision.missed, decision.missed_count
            )
            self.bus.publish(
                TICK_MISSED,
                {
                    "pipeline": pipeline,
                    "schedule": key,
                    "count": decision.missed_count,
                    "last": decision.missed[-1].isoformat() if decision.missed else None,
                },
            )
        self._notes_dirty.set()

    async def _on_final(self, run: ActiveRun, outcome: RunOutcome) -> None:
        self._notes_dirty.set()
        for name, applied in sorted(self.applied.items()):
            for trigger in applied.pipeline.spec.after:
                if trigger.pipeline == run.intent.pipeline and _matches(trigger.on, outcome.state):
                    intent = RunIntent(
                        name,
                        Trigger.AFTER,
                        run.run_id,
                        reason=f"after {run.intent.pipeline} ({outcome.state.value})",
                    )
                    await self.supervisor.submit(intent, applied)

    # -- start-up, loop, shutdown ----------------------------------------------------------------

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.metrics.follow(self.bus)))
        await asyncio.to_thread(self._read_history)
        await self.reconciler.restore()
        await self._adopt()
        await self.reconciler.run_pass("start-up")
        self.ready = True

    def _read_history(self) -> None:
        runs = latest_runs((text for _, text in self.store.notes()), HISTORY_RUNS)
        self.history = runs
        seen: set[str] = set()
        history: dict[EntryKey, datetime] = {}
        for pipeline, lines in runs.items():
            for line in lines:
                seen.add(line.run_id)
                key = (line.model_extra or {}).get("schedule")
                if line.scheduled_for is not None and isinstance(key, str):
                    previous = history.get((pipeline, key))
                    if previous is None or line.scheduled_for > previous:
                        history[(pipeline, key)] = line.scheduled_for
        self.supervisor.mark_seen(seen)
        self._history = history

    async def _adopt(self) -> None:
        try:
            managed = await self.executor.list_managed()
        except FastflowError as exc:
            logger.error("cannot list containers to adopt: %s", exc)
            return
        for item in managed:
            applied = self.applied.get(item.pipeline)
            if applied is None or applied.commit != item.commit:
                applied = (
                    await asyncio.to_thread(self._applied_at, item.pipeline, item.commit) or applied
                )
            if applied is None:
                logger.warning(
                    "container of run %s belongs to unknown pipeline %r", item.run_id, item.pipeline
                )
                continue
            logger.info(
                "adopting run %s (attempt %d, %s)",
                item.run_id,
                item.attempt,
                "running" if item.running else "ended",
            )
            await self.supervisor.adopt(item, applied)

    def _applied_at(self, pipeline: str, commit: str) -> Applied | None:
        repo = self.source.repo
        if commit not in repo:
            return None
        state, secrets = self.reconciler.unlocker.unlock(
            gitrepo.load_commit(repo, gitrepo.resolve_commit(repo, commit), self.reconciler.loader),
            gitrepo.commit_reader(repo, commit),
        )
        found = state.pipelines.get(pipeline)
        return Applied(found, commit, secrets.get(pipeline, {})) if found else None

    def _applied_time(self) -> float:
        commit = self.reconciler.applied_commit
        item = self.source.repo.get(commit) if commit else None
        return float(item.commit_time) if isinstance(item, pygit2.Commit) else 0.0

    def request_fetch(self) -> None:
        """Ask for a pass as soon as possible (webhook)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """The main loop, until ``stop`` is set."""
        self._tasks += [
            asyncio.create_task(self.cron.run(stop)),
            asyncio.create_task(self._sync_notes(stop)),
        ]
        watch_dir = self.source.watch_dir()
        if watch_dir is not None:
            self._tasks.append(asyncio.create_task(self._watch(watch_dir, stop)))
        failures = 0
        self._wake.set()  # one pass right away: a push between start-up and the watcher is not lost
        while not stop.is_set():
            await _wait_any(
                self._wake, stop, timeout_s=fetch_wait(self.options.interval_s, failures)
            )
            if stop.is_set():
                break
            self._wake.clear()
            result = await self.reconciler.run_pass("change")
            failures = 0 if result.fetched else failures + 1

    async def _watch(self, git_dir: Path, stop: asyncio.Event) -> None:
        try:
            async for _ in watch_refs(git_dir, stop):
                self._wake.set()
        except Exception:
            logger.exception("watching %s failed; falling back to the fetch interval", git_dir)

    async def _sync_notes(self, stop: asyncio.Event) -> None:
        if not self.options.push_notes:
            return
        delay = 1.0
        while not stop.is_set():
            await _wait_any(self._notes_dirty, stop, timeout_s=None)
            if stop.is_set():
                return
            await asyncio.sleep(0.5)  # gather what arrives together
            self._notes_dirty.clear()
            try:
                await asyncio.to_thread(self._exchange_notes, 8)
                delay = 1.0
            except FastflowError as exc:
                logger.warning(
                    "could not push notes to %s: %s (retry in %.0fs)",
                    self.source.display,
                    exc,
                    delay,
                )
                self._notes_dirty.set()
                await _wait_any(asyncio.Event(), stop, timeout_s=delay)
                delay = min(delay * 2, 300.0)

    async def shutdown(self) -> None:
        """Stop loops and supervision; containers keep running."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.supervisor.shutdown()
        if self.options.push_notes:
            with contextlib.suppress(FastflowError):
                await asyncio.to_thread(self._exchange_notes, 3)

    def _exchange_notes(self, attempts: int) -> None:
        """Bring the notes to the source: push to a remote; for a local repository, merge in both
        directions (it may be non-bare, which libgit2 cannot push into)."""
        local = self.source.local_path
        if local is None:
            self.store.sync(self.source.url, attempts, self.source.remote_callbacks)
            return
        NoteStore(local, max_runs=self.store.max_runs).pull(str(self.source.mirror_path))
        self.store.pull(str(local))


def _matches(condition: AfterCondition, state: RunState) -> bool:
    if state in (RunState.SKIPPED, RunState.MISSED):
        return False
    if condition is AfterCondition.ALWAYS:
        return True
    if condition is AfterCondition.SUCCESS:
        return state is RunState.SUCCEEDED
    return state in FAILED_STATES


async def _wait_any(event: asyncio.Event, stop: asyncio.Event, timeout_s: float | None) -> None:
    waiters = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
