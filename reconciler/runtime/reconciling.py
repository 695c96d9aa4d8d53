"""One reconcile pass: resolve -> load -> plan -> apply -> record, with record on every exit path.

* resolve: fetch the source into the mirror; every branch head is known.
* load: each new branch head is loaded (incrementally) and its secrets unlocked.
* plan/apply (tracked branch only): valid pipelines replace their applied specs; an invalid one
  keeps its last good spec (quarantine); a commit whose ``fastflow.yaml`` is invalid applies
  nothing. ``on_push`` pipelines whose tree changed run, and so do pipelines named by
  ``Fastflow-Run:`` trailers of the new commits (each at its own commit).
* record: ``fastflow/validate`` on every new branch head, ``fastflow/apply`` on the tracked
  head, both in the notes (and on the forge), also when the pass failed half-way.

An unreachable source keeps the applied state running; the caller retries with backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.adapters import gitrepo
from reconciler.adapters.gitsource import GitSource, run_trailers
from reconciler.core.loading import Loader
from reconciler.core.planning import make_plan
from reconciler.model.desired import DesiredState
from reconciler.model.events import COMMIT_FETCHED, PASS_COMPLETED
from reconciler.model.notes import CONTEXT_APPLY, CONTEXT_VALIDATE, StatusLine, StatusState
from reconciler.model.runs import Trigger
from reconciler.model.secrets import SecretValue
from reconciler.runtime.activeruns import Applied, RunIntent
from reconciler.runtime.bus import Bus
from reconciler.runtime.clock import Clock
from reconciler.runtime.recording import Recorder
from reconciler.runtime.unlocking import Unlocker

logger = logging.getLogger(__name__)
Submit = Callable[[RunIntent, Applied], Awaitable[str | None]]
OnApplied = Callable[[dict[str, Applied], DesiredState], Awaitable[None]]


@dataclass
class PassResult:
    fetched: bool = False
    validated: list[str] = field(default_factory=list)
    applied: str | None = None
    problems: int = 0
    runs: list[str] = field(default_factory=list)
    error: str = ""
    duration_s: float = 0.0


class Reconciler:
    def __init__(
        self,
        *,
        source: GitSource,
        branch: str,
        recorder: Recorder,
        bus: Bus,
        clock: Clock,
        submit: Submit,
        on_applied: OnApplied,
        state_file: Path,
        unlocker: Unlocker | None = None,
    ) -> None:
        self.source = source
        self.branch = branch
        self.recorder = recorder
        self.bus = bus
        self.clock = clock
        self.submit = submit
        self.on_applied = on_applied
        self.state_file = state_file
        self.unlocker = unlocker or Unlocker()
        self.loader = Loader()
        self.applied: dict[str, Applied] = {}
        self.applied_commit: str | None = None
        self.applied_state: DesiredState | None = None
        # the newest tracked commit that could not apply at all (repo-wide problems), until one does
        self.rejected: tuple[str, DesiredState] | None = None
        self.validated: dict[str, str] = {}
        self.last_fetch: float | None = None
        self.last_pass: PassResult | None = None
        self.branch_missing = False
        self._lock = asyncio.Lock()

    # -- start-up ----------------------------------------------------------------------------

    async def restore(self) -> None:
        """Re-apply the commit applied before a restart, without triggering anything."""
        try:
            saved = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        commit = saved.get("applied_commit")
        if not isinstance(commit, str) or commit not in self.source.repo:
            return
        state, secrets = await asyncio.to_thread(self._load, commit)
        self.applied = self._merge(state, secrets, commit)
        self.applied_commit, self.applied_state = commit, state
        self.validated[self.branch] = commit
        await self.on_applied(self.applied, state)
        logger.info("restored applied commit %s (%d pipelines)", commit[:12], len(self.applied))

    # -- a pass ------------------------------------------------------------------------------

    async def run_pass(self, reason: str = "") -> PassResult:
        async with self._lock:
            started = time.perf_counter()
            result = PassResult()
            statuses: list[tuple[str, StatusLine]] = []
            try:
                heads = await asyncio.to_thread(self.source.fetch)
                result.fetched, self.last_fetch = True, time.time()
                for branch, commit in sorted(heads.items()):
                    if self.validated.get(branch) != commit:
                        self.bus.publish(COMMIT_FETCHED, {"branch": branch, "commit": commit})
                await self._pass(heads, result, statuses)
            except Exception as exc:  # the pass failed; the applied state keeps running
                result.error = str(exc)
                logger.warning("reconcile pass failed (%s): %s", reason or "pass", exc)
            finally:
                await self._record(statuses)
                result.duration_s = time.perf_counter() - started
                self.last_pass = result
                self.bus.publish(
                    PASS_COMPLETED,
                    {
                        "reason": reason,
                        "fetched": result.fetched,
                        "applied": self.applied_commit,
                        "error": result.error,
                        "duration_s": round(result.duration_s, 4),
                        "runs": result.runs,
                        "problems": result.problems,
                    },
                )
            if result.applied:
                logger.info(
                    "applied %s: %d pipelines, %d problems, %d runs started (%.0f ms)",
                    result.applied[:12],
                    len(self.applied),
                    result.problems,
                    len(result.runs),
                    result.duration_s * 1000,
                )
            return result

    async def _pass(
        self, heads: dict[str, str], result: PassResult, statuses: list[tuple[str, StatusLine]]
    ) -> None:
        self.branch_missing = self.branch not in heads
        if self.branch_missing:
            logger.error(
                "tracked branch %r is missing at the source; keeping %s applied",
                self.branch,
                self.applied_commit,
            )
        for branch, commit in sorted(heads.items()):
            if self.validated.get(branch) == commit:
                continue
            state, secrets = await asyncio.to_thread(self._load, commit)
            statuses.append((commit, self._validate_status(state)))
            self.validated[branch] = commit
            result.validated.append(branch)
            if branch == self.branch and commit != self.applied_commit:
                await self._apply(commit, state, secrets, result, statuses)
        for gone in [b for b in self.validated if b not in heads]:
            del self.validated[gone]

    def _load(self, commit: str) -> tuple[DesiredState, dict[str, dict[str, SecretValue]]]:
        repo = self.source.repo
        state = gitrepo.load_commit(repo, gitrepo.resolve_commit(repo, commit), self.loader)
        return self.unlocker.unlock(state, gitrepo.commit_reader(repo, commit))

    async def _apply(
        self,
        commit: str,
        state: DesiredState,
        secrets: dict[str, dict[str, SecretValue]],
        result: PassResult,
        statuses: list[tuple[str, StatusLine]],
    ) -> None:
        now = self.clock.now()
        if state.repo_problems:
            first = state.repo_problems[0]
            statuses.append(
                (
                    commit,
                    _status(
                        CONTEXT_APPLY, StatusState.FAILURE, f"not applied: {first}", now, state
                    ),
                )
            )
            result.problems = len(state.problems)
            self.rejected = (commit, state)
            return
        self.rejected = None
        old_commit, old = self.applied_commit, self.applied
        new = self._merge(state, secrets, commit)
        if self.applied_state is not None:
            plan = make_plan(self.applied_state, state, now)
            logger.info("plan for %s: %d change(s)", commit[:12], len(plan.changes))
        self.applied, self.applied_commit, self.applied_state = new, commit, state
        result.applied, result.problems = commit, len(state.problems)
        await asyncio.to_thread(self._save)
        await self.on_applied(new, state)
        quarantined = sorted(n for n in state.invalid if n in new)
        text = f"applied {len(new)} pipeline(s)"
        if quarantined:
            text += f"; quarantined (last good spec kept): {', '.join(quarantined)}"
        state_word = StatusState.FAILURE if state.problems else StatusState.SUCCESS
        statuses.append((commit, _status(CONTEXT_APPLY, state_word, text, now, state)))
        result.runs += await self._push_runs(old_commit, old, new, commit)
        result.runs += await self._trailer_runs(old_commit, commit, new)

    def _merge(
        self, state: DesiredState, secrets: dict[str, dict[str, SecretValue]], commit: str
    ) -> dict[str, Applied]:
        merged = {
            name: Applied(p, commit, secrets.get(name, {})) for name, p in state.pipelines.items()
        }
        for name in state.invalid:
            if name in self.applied:
                merged[name] = self.applied[name]  # quarantine: the last good spec keeps running
        return merged

    async def _push_runs(
        self, old_commit: str | None, old: dict[str, Applied], new: dict[str, Applied], commit: str
    ) -> list[str]:
        if old_commit is None:
            return []  # the first apply after a fresh start: nothing "changed"
        started = []
        for name, applied in sorted(new.items()):
            before = old.get(name)
            if (
                applied.commit != commit
                or not applied.pipeline.spec.on_push
                or applied.pipeline.spec.suspend
            ):
                continue
            if before is None or before.pipeline.tree_id != applied.pipeline.tree_id:
                run_id = await self.submit(
                    RunIntent(name, Trigger.PUSH, commit, reason=f"pushed {commit[:12]}"), applied
                )
                if run_id:
                    started.append(run_id)
        return started

    async def _trailer_runs(
        self, old_commit: str | None, commit: str, new: dict[str, Applied]
    ) -> list[str]:
        started = []
        for item in await asyncio.to_thread(self.source.new_commits, old_commit, commit):
            names = run_trailers(item)
            if not names:
                continue
            sha = str(item.id)
            state, secrets = (
                (await asyncio.to_thread(self._load, sha))
                if sha != commit
                else (self.applied_state, None)
            )
            assert state is not None
            for name in names:
                pipeline = state.pipelines.get(name)
                if pipeline is None:
                    logger.warning(
                        "Fastflow-Run in %s names %r, which is not a valid pipeline there",
                        sha[:12],
                        name,
                    )
                    continue
                applied = (
                    new[name]
                    if sha == commit and name in new
                    else Applied(pipeline, sha, (secrets or {}).get(name, {}))
                )
                run_id = await self.submit(
                    RunIntent(name, Trigger.MANUAL, sha, reason=f"Fastflow-Run in {sha[:12]}"),
                    applied,
                )
                if run_id:
                    started.append(run_id)
        return started

    def _validate_status(self, state: DesiredState) -> StatusLine:
        now = self.clock.now()
        if state.ok:
            return _status(
                CONTEXT_VALIDATE,
                StatusState.SUCCESS,
                f"{len(state.pipelines)} pipeline(s) valid",
                now,
                state,
            )
        text = f"{len(state.problems)} problem(s): {state.problems[0]}"
        return _status(CONTEXT_VALIDATE, StatusState.FAILURE, text, now, state)

    async def _record(self, statuses: list[tuple[str, StatusLine]]) -> None:
        if statuses:
            await self.recorder.statuses(statuses)

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temp = self.state_file.with_suffix(".tmp")
        temp.write_text(json.dumps({"applied_commit": self.applied_commit, "branch": self.branch}))
        temp.replace(self.state_file)


def _status(
    context: str, state: StatusState, description: str, now: object, desired: DesiredState
) -> StatusLine:
    extra = {"problems": [str(p) for p in desired.problems[:50]]} if desired.problems else {}
    return StatusLine.model_validate(
        {"at": now, "context": context, "state": state, "description": description[:140], **extra}
    )
