"""The supervisor with the in-memory executor: concurrency policies, the global queue, retries with
backoff on a manual clock, and what gets recorded in the notes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters import gitrepo
from reconciler.adapters.gitnotes import NoteStore
from reconciler.adapters.logarchive import LogArchive
from reconciler.core.notes import current_statuses, parse_lines, runs_of
from reconciler.executors.memory import MemoryExecutor, Program
from reconciler.model.runs import RunState, Stream, Trigger
from reconciler.runtime.activeruns import Applied, RunIntent
from reconciler.runtime.bus import Bus
from reconciler.runtime.clock import ManualClock, SystemClock
from reconciler.runtime.recording import Recorder
from reconciler.runtime.supervisor import Supervisor
from tests.gitutil import GitRepo

HANG = Program(output=((Stream.STDOUT, "working"),), hang=True)


class Rig:
    def __init__(
        self, tmp: Path, specs: dict[str, str], *, max_parallel: int = 4, clock: Any = None
    ) -> None:
        self.git = GitRepo(tmp / "repo")
        files = {f"pipelines/{n}/pipeline.yaml": text for n, text in specs.items()}
        files |= {f"pipelines/{n}/main.py": "" for n in specs}
        self.commit = self.git.commit(files)
        repo = gitrepo.open_repo(self.git.path)
        state = gitrepo.load_commit(repo, gitrepo.resolve_commit(repo, self.commit))
        assert state.ok, state.problems
        self.applied = {n: Applied(p, self.commit) for n, p in state.pipelines.items()}
        self.executor = MemoryExecutor()
        self.store = NoteStore(self.git.path, max_runs=100)
        self.bus = Bus()
        self.finals: list[tuple[str, RunState, int]] = []
        self.supervisor = Supervisor(
            executor=self.executor,
            recorder=Recorder(self.store),
            bus=self.bus,
            archive=LogArchive(tmp / "logs"),
            repo_path=str(self.git.path),
            workspaces_root=tmp / "ws",
            default_image="fastflow-runner:local",
            clock=clock or SystemClock(),
            max_parallel=max_parallel,
            on_final=self._final,
        )

    async def _final(self, run: Any, outcome: Any) -> None:
        self.finals.append((run.intent.pipeline, outcome.state, run.attempt))

    async def submit(self, pipeline: str, key: str) -> str | None:
        return await self.supervisor.submit(
            RunIntent(pipeline, Trigger.MANUAL, key), self.applied[pipeline]
        )

    def runs(self) -> list[Any]:
        return runs_of(parse_lines(self.store.read(self.commit)))


async def settle(predicate: Callable[[], bool], rounds: int = 5000) -> None:
    """Until ``predicate`` holds; yields to the loop and to worker threads (notes are written in
    threads), never advances the manual clock."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def test_skip_records_the_second_run_as_skipped(tmp_path: Path) -> None:
    async def body() -> None:
        rig = Rig(tmp_path, {"p": "concurrency: skip\n"})
        rig.executor.pipeline_programs["p"] = [HANG]
        first = await rig.submit("p", "one")
        await settle(lambda: len(rig.executor.running()) == 1)
        assert await rig.submit("p", "two") is None
        lines = rig.runs()
        assert [(r.state, r.message.split(":")[0]) for r in lines] == [("skipped", "skipped")]
        assert first in lines[0].message
        for item in rig.supervisor.runs():
            item.cancel.set()
        await rig.supervisor.drain(10)

    run(body)


def test_queue_keeps_one_waiting_and_skips_the_rest(tmp_path: Path) -> None:
    async def body() -> None:
        rig = Rig(tmp_path, {"p": "concurrency: queue\n"})
        rig.executor.pipeline_programs["p"] = [HANG]
        first = await rig.submit("p", "one")
        await settle(lambda: len(rig.executor.running()) == 1)
        second = await rig.submit("p", "two")
        assert second is not None and await rig.submit("p", "three") is None
        assert [r.state for r in rig.supervisor.runs() if r.run_id == second] == [RunState.QUEUED]
        rig.supervisor.find(first).cancel.set()  # type: ignore[union-attr]
        await settle(lambda: rig.executor.running() == [second])
        rig.supervisor.find(second).cancel.set()  # type: ignore[union-attr]
        await rig.supervisor.drain(10)
        states = {r.run_id: r.state for r in rig.runs()}
        assert states[first] == states[second] == "cancelled"
        assert sorted(states.values()) == ["cancelled", "cancelled", "skipped"]

    run(body)


def test_replace_cancels_the_running_one(tmp_path: Path) -> None:
    async def body() -> None:
        rig = Rig(tmp_path, {"p": "concurrency: replace\n"})
        rig.executor.pipeline_programs["p"] = [HANG]
        first = await rig.submit("p", "one")
        await settle(lambda: len(rig.executor.running()) == 1)
        rig.executor.pipeline_programs["p"] = [Program()]
        second = await rig.submit("p", "two")
        await rig.supervisor.drain(10)
        states = {r.run_id: r.state for r in rig.runs()}
        assert states == {first: "cancelled", second: "succeeded"}

    run(body)


def test_allow_runs_both(tmp_path: Path) -> None:
    async def body() -> None:
        rig = Rig(tmp_path, {"p": "concurrency: allow\n"})
        rig.executor.pipeline_programs["p"] = [HANG]
        await rig.submit("p", "one")
        await rig.submit("p", "two")
        await settle(lambda: len(rig.executor.running()) == 2)
        for item in rig.supervisor.runs():
            item.cancel.set()
        await rig.supervisor.drain(10)

    run(body)


def test_global_limit_queues_runs_in_order_and_drops_none(tmp_path: Path) -> None:
    async def body() -> None:
        rig = Rig(tmp_path, dict.fromkeys(("a", "b", "c"), ""), max_parallel=1)
        for name in ("a", "b", "c"):
            rig.executor.pipeline_programs[name] = [HANG]
        ids = [await rig.submit(name, "k") for name in ("a", "b", "c")]
        await settle(lambda: len(rig.executor.running()) == 1)
        assert rig.supervisor.queue_length == 2
        for expected in ids:
            await settle(lambda: rig.executor.running() == [expected])  # noqa: B023
            rig.supervisor.find(expected).cancel.set()  # type: ignore[union-attr]
        await rig.supervisor.drain(10)
        assert [r.run_id for r in sorted(rig.runs(), key=lambda r: r.at)] == ids
        assert [p for p, _, _ in rig.finals] == ["a", "b", "c"]

    run(body)


def test_retries_back_off_then_record_each_attempt(tmp_path: Path) -> None:
    async def body() -> None:
        clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        rig = Rig(tmp_path, {"p": "retries: {max: 2, delay: 10s, backoff: 3}\n"}, clock=clock)
        rig.executor.pipeline_programs["p"] = [
            Program(exit_code=1),
            Program(exit_code=2),
            Program(),
        ]
        run_id = await rig.submit("p", "k")
        await settle(lambda: [r.attempt for r in rig.runs()] == [1] and clock.sleepers == 1)
        await clock.advance(9)
        assert len(rig.executor.launched) == 1  # not before the delay
        await clock.advance(1)
        await settle(lambda: len(rig.runs()) == 2 and clock.sleepers == 1)
        await clock.advance(29)
        assert len(rig.executor.launched) == 2  # the second delay is 10s * 3
        await clock.advance(1)
        await rig.supervisor.drain(10)
        lines = sorted(rig.runs(), key=lambda r: r.attempt)
        assert [(r.run_id, r.attempt, r.trigger, r.state, r.exit_code) for r in lines] == [
            (run_id, 1, "manual", "failed", 1),
            (run_id, 2, "retry", "failed", 2),
            (run_id, 3, "retry", "succeeded", 0),
        ]
        assert rig.finals == [("p", RunState.SUCCEEDED, 3)]  # `after` sees only the final attempt
        assert (
            current_statuses(parse_lines(rig.store.read(rig.commit)))["fastflow/run/p"].state
            == "success"
        )

    run(body)


def test_the_same_run_id_never_runs_twice(tmp_path: Path) -> None:
    async def body() -> None:
        rig = Rig(tmp_path, {"p": "concurrency: allow\n"})
        first = await rig.submit("p", "tick")
        await rig.supervisor.drain(10)
        assert await rig.submit("p", "tick") is None
        rig.supervisor.mark_seen({"x"})
        assert [r.run_id for r in rig.runs()] == [first]

    run(body)


@pytest.mark.parametrize("policy", ["skip", "queue", "replace", "allow"])
def test_log_lines_reach_the_bus_and_the_archive(tmp_path: Path, policy: str) -> None:
    async def body() -> None:
        rig = Rig(tmp_path, {"p": f"concurrency: {policy}\n"})
        rig.executor.pipeline_programs["p"] = [
            Program(output=((Stream.STDOUT, "a"), (Stream.STDERR, "b")))
        ]
        subscription = rig.bus.subscribe()
        run_id = await rig.submit("p", "k")
        await rig.supervisor.drain(10)
        assert [e.data["text"] for e in rig.bus.run_log(str(run_id))] == ["a", "b"]
        assert [
            (line.stream, line.text) for line in rig.supervisor.archive.read("p", str(run_id))
        ] == [
            (Stream.STDOUT, "a"),
            (Stream.STDERR, "b"),
        ]
        kinds = []
        subscription.close()
        async for event in subscription:
            if event.kind != "stats_sampled":
                kinds.append(event.kind)
        assert kinds == ["run_queued", "run_started", "run_finished"]

    run(body)
