"""Reconcile passes over a real Git source (a local repository and a `git daemon` remote) with the
in-memory executor: statuses, quarantine, push and trailer runs, `after:` chains, force-pushes,
deleted branches, and a restart that runs nothing twice."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pygit2

from reconciler.adapters.gitnotes import NoteStore
from reconciler.core.notes import current_statuses, parse_lines, runs_of
from reconciler.executors.memory import MemoryExecutor, Program
from reconciler.runtime.app import App, ServeOptions, fetch_wait
from reconciler.runtime.clock import ManualClock
from reconciler.settings import Settings
from tests.gitdaemon import git_daemon, served_copy
from tests.gitutil import GitRepo

BASE = {
    "pipelines/extract/pipeline.yaml": "on_push: true\n",
    "pipelines/extract/main.py": "print('e')\n",
    "pipelines/load/pipeline.yaml": "after: [extract]\n",
    "pipelines/load/main.py": "print('l')\n",
    "pipelines/alert/pipeline.yaml": "after: [{pipeline: load, on: failure}]\n",
    "pipelines/alert/main.py": "",
}


@asynccontextmanager
async def started(
    source: str, data: Path, executor: MemoryExecutor | None = None
) -> AsyncIterator[App]:
    app = App(
        ServeOptions(source=source, push_notes=False),
        Settings(data_dir=data),
        executor or MemoryExecutor(),
    )
    await app.start()
    try:
        yield app
    finally:
        await app.shutdown()


def notes(app: App, commit: str) -> list[Any]:
    return parse_lines(app.store.read(commit))


def statuses(app: App, commit: str) -> dict[str, str]:
    return {k: v.state.value for k, v in current_statuses(notes(app, commit)).items()}


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def test_push_runs_on_push_pipelines_and_after_chains_and_records_notes(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    async def body() -> None:
        first = git_repo.commit(BASE)
        executor = MemoryExecutor()
        executor.pipeline_programs["load"] = [Program(exit_code=3)]
        async with started(str(git_repo.path), tmp_path / "data", executor) as app:
            assert app.reconciler.applied_commit == first
            assert statuses(app, first) == {
                "fastflow/apply": "success",
                "fastflow/validate": "success",
            }
            assert executor.launched == []  # the first apply after a fresh start runs nothing
            second = git_repo.commit(
                {"pipelines/extract/main.py": "print('e2')\n"}, "change extract"
            )
            result = await app.reconciler.run_pass("test")
            assert result.applied == second
            await app.supervisor.drain(10)
            launched = [(r.pipeline, r.trigger.value) for r in executor.launched]
            assert launched == [("extract", "push"), ("load", "after"), ("alert", "after")]
            runs = {r.pipeline: r for r in runs_of(notes(app, second))}
            assert (runs["extract"].state, runs["load"].state, runs["alert"].state) == (
                "succeeded",
                "failed",
                "succeeded",
            )
            assert statuses(app, second)["fastflow/run/load"] == "failure"
            # a commit that changes nothing runs nothing
            third = git_repo.commit({"README.md": "docs\n"}, "docs")
            await app.reconciler.run_pass("test")
            await app.supervisor.drain(10)
            assert (
                len(executor.launched) == 3 and statuses(app, third)["fastflow/apply"] == "success"
            )

    run(body)


def test_invalid_commit_fails_its_status_and_keeps_the_last_good_spec(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    async def body() -> None:
        git_repo.commit(BASE)
        async with started(str(git_repo.path), tmp_path / "data") as app:
            good_load = app.applied["load"]
            bad = git_repo.commit(
                {"pipelines/load/pipeline.yaml": "after: [extract]\ntimeout: forever\n"},
                "break load",
            )
            await app.reconciler.run_pass("test")
            assert statuses(app, bad) == {
                "fastflow/apply": "failure",
                "fastflow/validate": "failure",
            }
            validate = current_statuses(notes(app, bad))["fastflow/validate"]
            assert validate.model_extra["problems"] == [  # type: ignore[index]
                "pipelines/load/pipeline.yaml:2:10: timeout: 'forever' is not a duration; "
                "use a number with a unit: 30s, 15m, 2h, 1d or 1h30m"
            ]
            assert (
                "quarantined (last good spec kept): load"
                in current_statuses(notes(app, bad))["fastflow/apply"].description
            )
            assert app.applied["load"] is good_load  # quarantine: the old spec keeps running
            assert app.applied["extract"].commit == bad  # the rest applied
            broken_config = git_repo.commit(
                {"fastflow.yaml": "settings: {max_parallel_runs: lots}\n"}, "break config"
            )
            await app.reconciler.run_pass("test")
            assert app.reconciler.applied_commit == bad  # a broken fastflow.yaml applies nothing
            assert statuses(app, broken_config)["fastflow/apply"] == "failure"

    run(body)


def test_trailer_runs_named_pipelines_at_their_commit(git_repo: GitRepo, tmp_path: Path) -> None:
    async def body() -> None:
        git_repo.commit(BASE)
        executor = MemoryExecutor()
        async with started(str(git_repo.path), tmp_path / "data", executor) as app:
            one = git_repo.commit({}, "ops: rerun\n\nFastflow-Run: alert, nope")
            two = git_repo.commit(
                {"README.md": "x"}, "docs\n\nSigned-off-by: someone\nFastflow-Run: load"
            )
            await app.reconciler.run_pass("test")
            await app.supervisor.drain(10)
            got = sorted((r.pipeline, r.trigger.value, r.commit) for r in executor.launched)
            assert got == [("alert", "manual", one), ("load", "manual", two)]

    run(body)


def test_restart_runs_nothing_twice_and_restores_the_applied_commit(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    async def body() -> None:
        git_repo.commit(BASE)
        async with started(str(git_repo.path), tmp_path / "data") as app:
            head = git_repo.commit({"pipelines/extract/main.py": "print(2)\n"})
            await app.reconciler.run_pass("test")
            await app.supervisor.drain(10)
            before = len(runs_of(notes(app, head)))
        executor = MemoryExecutor()
        async with started(str(git_repo.path), tmp_path / "data", executor) as again:
            assert again.reconciler.applied_commit == head
            await again.reconciler.run_pass("test")
            await again.supervisor.drain(10)
            assert executor.launched == [] and len(runs_of(notes(again, head))) == before

    run(body)


def test_git_daemon_remote_force_push_and_deleted_branch(tmp_path: Path) -> None:
    served = served_copy(tmp_path, BASE)

    async def body(url: str) -> None:
        work = tmp_path / "work"
        subprocess.run(["git", "clone", "-q", url, str(work)], check=True)
        git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
        async with started(url, tmp_path / "data") as app:
            first = app.reconciler.applied_commit
            subprocess.run([*git, "checkout", "-q", "-b", "feature"], check=True)
            (work / "pipelines/extract/pipeline.yaml").write_text("on_push: maybe\n")
            subprocess.run([*git, "commit", "-qam", "bad feature"], check=True)
            subprocess.run([*git, "push", "-q", "origin", "feature"], check=True)
            await app.reconciler.run_pass("webhook")
            feature = pygit2.Repository(str(work)).head.target
            assert statuses(app, str(feature)) == {
                "fastflow/validate": "failure"
            }  # validated, not applied
            assert app.reconciler.applied_commit == first
            subprocess.run([*git, "push", "-q", "origin", "--delete", "feature"], check=True)
            subprocess.run([*git, "checkout", "-q", "main"], check=True)
            subprocess.run([*git, "commit", "-q", "--amend", "-m", "rewritten"], check=True)
            subprocess.run([*git, "push", "-q", "--force", "origin", "main"], check=True)
            await app.reconciler.run_pass("webhook")
            rewritten = str(pygit2.Repository(str(work)).head.target)
            assert app.reconciler.applied_commit == rewritten != first
            assert "feature" not in app.source.heads()
            subprocess.run(
                ["git", "-C", str(served / "origin.git"), "branch", "-m", "main", "trunk"],
                check=True,
            )
            result = await app.reconciler.run_pass("webhook")
            assert app.reconciler.branch_missing and result.error == ""
            assert app.reconciler.applied_commit == rewritten  # keeps running what it had

    with git_daemon(served) as base:
        run(lambda: body(f"{base}/origin.git"))


def test_notes_reach_a_local_non_bare_source(git_repo: GitRepo, tmp_path: Path) -> None:
    async def body() -> None:
        first = git_repo.commit(BASE)
        app = App(
            ServeOptions(source=str(git_repo.path)),
            Settings(data_dir=tmp_path / "data"),
            MemoryExecutor(),
        )
        await app.start()
        await asyncio.to_thread(app._exchange_notes, 3)  # noqa: SLF001  (what the sync task does)
        await app.shutdown()
        assert "fastflow/apply" in NoteStore(git_repo.path).read(first)

    run(body)


def test_fetch_retries_back_off_and_never_wait_longer_than_the_interval() -> None:
    assert [fetch_wait(60, n) for n in range(8)] == [60, 2, 4, 8, 16, 32, 60, 60]
    assert [fetch_wait(3600, n) for n in (0, 8, 9, 100)] == [3600, 256, 300, 300]
    assert fetch_wait(1, 5) == 1  # a short interval is never stretched by the backoff


def test_schedules_keep_firing_while_the_source_is_unreachable(tmp_path: Path) -> None:
    async def body() -> None:
        served = served_copy(
            tmp_path,
            {
                "pipelines/tick/pipeline.yaml": "schedules: [{cron: '*/10 * * * *'}]\n",
                "pipelines/tick/main.py": "print(1)\n",
            },
        )
        clock = ManualClock(datetime(2026, 6, 1, 0, 1, tzinfo=UTC))
        executor = MemoryExecutor()
        with git_daemon(served) as base:
            app = App(
                ServeOptions(source=f"{base}/origin.git", push_notes=False),
                Settings(data_dir=tmp_path / "data"),
                executor,
                clock=clock,
            )
            await app.start()
            assert (await app.reconciler.run_pass("test")).fetched
        stop = asyncio.Event()
        cron = asyncio.create_task(app.cron.run(stop))
        try:
            failed = await app.reconciler.run_pass("test")  # the daemon is gone
            assert not failed.fetched and "cannot fetch" in (failed.error or "")
            for _ in range(6):  # 00:01 -> 00:31: ticks at 00:10, 00:20 and 00:30
                await clock.advance(300)
                await app.supervisor.drain(10)
            assert [r.pipeline for r in executor.launched] == ["tick"] * 3
            assert "cannot fetch" in (app.reconciler.last_pass.error or "")  # type: ignore[union-attr]
            for _ in range(200):  # until the metrics task has observed the passes
                metrics = app.metrics.render().decode()
                if "fetch_failed" in metrics:
                    break
                await asyncio.sleep(0.02)
            assert "fastflow_source_up 0.0" in metrics
            assert 'fastflow_passes_total{result="fetch_failed"} 1.0' in metrics
        finally:
            stop.set()
            await cron
            await app.shutdown()

    run(body)
