"""End to end with real containers behind the proxy and a real `git daemon` remote, the reconciler
in-process on a manual clock (so DST and downtime need no waiting): pushes, trailers, `after:`
chains, retries, every concurrency policy, every missed policy after a downtime, DST."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.notes import current_statuses, parse_lines
from reconciler.executors.docker import DockerExecutor, DockerSettings
from reconciler.model.notes import RunLine
from reconciler.runtime.app import App, ServeOptions
from reconciler.runtime.clock import ManualClock
from reconciler.settings import Settings
from tests.dockerutil import DOCKER_HOST, require_engine
from tests.gitdaemon import git_daemon, served_copy

pytestmark = pytest.mark.docker


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class Remote:
    """A bare repository served by `git daemon`, and a working clone that pushes to it."""

    def __init__(self, tmp: Path, url: str, served: Path) -> None:
        self.url = url
        self.served = served
        self.work = tmp / "work"
        subprocess.run(["git", "clone", "-q", url, str(self.work)], check=True, capture_output=True)

    def push(self, files: dict[str, str], message: str = "change") -> str:
        for path, text in files.items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git = ["git", "-C", str(self.work), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], check=True)
        subprocess.run([*git, "push", "-q", "origin", "HEAD:main"], check=True, capture_output=True)
        return subprocess.run(
            [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    require_engine()
    served = served_copy(tmp_path, {"README.md": "pipelines\n"})
    with git_daemon(served) as base:
        yield Remote(tmp_path, f"{base}/origin.git", served / "origin.git")


@asynccontextmanager
async def reconciler(remote: Remote, data: Path, clock: ManualClock) -> AsyncIterator[App]:
    settings = Settings(data_dir=data)
    executor = DockerExecutor(
        DockerSettings(instance=f"e2e-{uuid.uuid4().hex[:8]}", data_dir=data, base_url=DOCKER_HOST)
    )
    app = App(ServeOptions(source=remote.url, push_notes=True), settings, executor, clock=clock)
    await app.start()
    stop = asyncio.Event()
    cron = asyncio.create_task(app.cron.run(stop))
    try:
        yield app
    finally:
        stop.set()
        await cron
        await app.supervisor.drain(120)
        await app.shutdown()
        for managed in await executor.list_managed():
            handle = await executor.adopt(managed)
            await executor.cancel(handle)
            await executor.remove(handle)
        executor.close()


def run_lines(app: App) -> list[RunLine]:
    found = [
        line
        for _, text in app.store.notes()
        for line in parse_lines(text)
        if isinstance(line, RunLine)
    ]
    return sorted(found, key=lambda r: (r.scheduled_for or r.at, r.at))


def script(body: str) -> str:
    return "import os, sys, time\n" + body + "\n"


async def quiet(app: App, timeout_s: float = 120) -> None:
    """Until no attempt runs or waits for a slot (a retry waiting for the clock counts as quiet)."""
    calm = 0
    for _ in range(int(timeout_s / 0.05)):
        busy = [
            r
            for r in app.supervisor.runs()
            if r.state.value == "running" or (r.state.value == "queued" and r.attempt == 1)
        ]
        calm = 0 if busy else calm + 1
        if calm >= 6:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("runs did not settle")


async def tick(app: App, clock: ManualClock, seconds: float, step: float) -> None:
    for _ in range(int(seconds / step)):
        await clock.advance(step)
        await quiet(app)


def test_push_trailer_and_after_chain_run_real_containers(remote: Remote, tmp_path: Path) -> None:
    async def body() -> None:
        remote.push(
            {
                "pipelines/extract/pipeline.yaml": "on_push: true\nnetwork: none\n",
                "pipelines/extract/main.py": script(
                    "print('extract at', os.environ['FASTFLOW_COMMIT'][:7])"
                ),
                "pipelines/report/pipeline.yaml": "network: none\nafter: [extract]\n",
                "pipelines/report/main.py": script(
                    "print('report after', os.environ['FASTFLOW_TRIGGER'])"
                ),
                "pipelines/adhoc/pipeline.yaml": "network: none\n",
                "pipelines/adhoc/main.py": script("print('adhoc')"),
            },
            "pipelines",
        )
        async with reconciler(remote, tmp_path / "data", ManualClock(utc(2026, 6, 1))) as app:
            change = remote.push(
                {"pipelines/extract/main.py": script("print('extract v2')")},
                "v2\n\nFastflow-Run: adhoc",
            )
            await app.reconciler.run_pass("webhook")
            await app.supervisor.drain(120)
            lines = run_lines(app)
            assert sorted((r.pipeline, r.trigger, r.state) for r in lines) == [
                ("adhoc", "manual", "succeeded"),
                ("extract", "push", "succeeded"),
                ("report", "after", "succeeded"),
            ]
            assert {r.pipeline: r.log_tail for r in lines} == {
                "adhoc": ["adhoc"],
                "extract": ["extract v2"],
                "report": ["report after after"],
            }
        pushed = subprocess.run(
            ["git", "-C", str(remote.served), "notes", "--ref=fastflow", "show", change],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert pushed.count('"type":"run"') == 3  # the notes were pushed back to the remote

    asyncio.run(body())


def test_quarantine_and_an_invalid_commit_keep_the_last_good_spec_running(
    remote: Remote, tmp_path: Path
) -> None:
    hourly = "network: none\nschedules: [{cron: '0 * * * *'}]\n"

    async def body() -> None:
        first = remote.push(
            {
                "pipelines/good/pipeline.yaml": hourly,
                "pipelines/good/main.py": script("print('good v1')"),
                "pipelines/shaky/pipeline.yaml": hourly,
                "pipelines/shaky/main.py": script("print('shaky v1')"),
            },
            "v1",
        )
        clock = ManualClock(utc(2026, 6, 1, 0, 30))
        async with reconciler(remote, tmp_path / "data", clock) as app:
            # one broken pipeline is quarantined with its last good spec (and code); the rest of
            # the commit applies
            partly = remote.push(
                {
                    "pipelines/good/main.py": script("print('good v2')"),
                    "pipelines/shaky/pipeline.yaml": hourly + "missed: sometimes\n",
                    "pipelines/shaky/main.py": script("print('shaky v2')"),
                },
                "v2 breaks shaky",
            )
            await app.reconciler.run_pass("webhook")
            found = current_statuses(parse_lines(app.store.read(partly)))
            assert found["fastflow/validate"].state.value == "failure"
            assert "pipelines/shaky/pipeline.yaml:3:9: missed:" in str(
                found["fastflow/validate"].model_extra
            )
            apply = found["fastflow/apply"]  # applied, but not all of it: failure, saying why
            assert apply.state.value == "failure"
            assert "quarantined (last good spec kept): shaky" in apply.description
            # a commit that is invalid as a whole (fastflow.yaml) applies nothing
            broken = remote.push({"fastflow.yaml": "defaults: {timeout: soon}\n"}, "v3")
            await app.reconciler.run_pass("webhook")
            assert app.reconciler.applied_commit == partly
            found = current_statuses(parse_lines(app.store.read(broken)))
            assert found["fastflow/apply"].state.value == "failure"
            assert "fastflow.yaml:1:21:" in found["fastflow/apply"].description
            await tick(app, clock, 1800, 600)  # 01:00: both schedules fire, in real containers
            ran = {
                (line.pipeline, commit): line.log_tail
                for commit, text in app.store.notes()
                for line in parse_lines(text)
                if isinstance(line, RunLine)
            }
            assert ran == {("good", partly): ["good v2"], ("shaky", first): ["shaky v1"]}

    asyncio.run(body())


def test_retries_with_backoff_on_real_containers(remote: Remote, tmp_path: Path) -> None:
    async def body() -> None:
        remote.push(
            {
                "pipelines/flaky/pipeline.yaml": "network: none\non_push: true\nretries: {max: 2, delay: 30s, backoff: 2}\n",
                "pipelines/flaky/main.py": script(
                    "sys.exit(0 if os.environ['FASTFLOW_ATTEMPT'] == '3' else 1)"
                ),
            }
        )
        clock = ManualClock(utc(2026, 6, 1))
        async with reconciler(remote, tmp_path / "data", clock) as app:
            remote.push(
                {
                    "pipelines/flaky/main.py": script(
                        "sys.exit(0 if os.environ['FASTFLOW_ATTEMPT'] == '3' else 2)"
                    )
                }
            )
            await app.reconciler.run_pass("push")
            await quiet(app)
            assert [r.attempt for r in run_lines(app)] == [1]
            await tick(app, clock, 29, 29)
            assert [r.attempt for r in run_lines(app)] == [1]  # not before the delay
            await tick(app, clock, 1, 1)  # attempt 2 after 30s
            assert sorted(r.attempt for r in run_lines(app)) == [1, 2]
            await tick(app, clock, 60, 60)  # attempt 3 after 60s more
            lines = run_lines(app)
            assert [
                (r.attempt, r.trigger, r.state, r.exit_code)
                for r in sorted(lines, key=lambda r: r.attempt)
            ] == [
                (1, "push", "failed", 2),
                (2, "retry", "failed", 2),
                (3, "retry", "succeeded", 0),
            ]
            assert len({r.run_id for r in lines}) == 1

    asyncio.run(body())


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", ["skipped", "succeeded"]),
        ("queue", ["succeeded", "succeeded"]),
        ("replace", ["cancelled", "succeeded"]),
        ("allow", ["succeeded", "succeeded"]),
    ],
)
def test_each_concurrency_policy_with_real_containers(
    remote: Remote, tmp_path: Path, policy: str, expected: list[str]
) -> None:
    async def body() -> None:
        remote.push(
            {
                "pipelines/slow/pipeline.yaml": f"network: none\nconcurrency: {policy}\n",
                "pipelines/slow/main.py": script(
                    "print('start', flush=True)\ntime.sleep(3)\nprint('done')"
                ),
            }
        )
        async with reconciler(remote, tmp_path / "data", ManualClock(utc(2026, 6, 1))) as app:
            remote.push({}, "one\n\nFastflow-Run: slow")
            await app.reconciler.run_pass("push")
            for _ in range(200):
                if any(r.state.value == "running" for r in app.supervisor.runs()):
                    break
                await asyncio.sleep(0.05)
            remote.push({}, "two\n\nFastflow-Run: slow")
            await app.reconciler.run_pass("push")
            await app.supervisor.drain(120)
            states = sorted(r.state for r in run_lines(app))
            assert states == sorted(expected)

    asyncio.run(body())


def test_each_missed_policy_after_a_downtime(remote: Remote, tmp_path: Path) -> None:
    hourly = "network: none\nschedules: [{cron: '0 * * * *'}]\n"
    remote.push(
        {
            "pipelines/skipper/pipeline.yaml": hourly + "missed: skip\n",
            "pipelines/latest/pipeline.yaml": hourly + "missed: latest\n",
            "pipelines/catchup/pipeline.yaml": hourly
            + "missed: all\nstarting_deadline: 1d\nmax_catchup: 3\n",
            **{
                f"pipelines/{n}/main.py": script("print(os.environ['FASTFLOW_RUN_ID'])")
                for n in ("skipper", "latest", "catchup")
            },
        }
    )

    async def body() -> list[Any]:
        clock = ManualClock(utc(2026, 6, 1, 5, 59, 50))
        async with reconciler(remote, tmp_path / "data", clock) as app:
            await tick(app, clock, 20, 20)  # 06:00 runs everywhere, then the reconciler goes down
            assert sorted(r.pipeline for r in run_lines(app)) == ["catchup", "latest", "skipper"]
        later = ManualClock(
            utc(2026, 6, 1, 10, 20)
        )  # up again at 10:20: 07, 08, 09, 10 were missed
        async with reconciler(remote, tmp_path / "data", later) as app:
            await tick(app, later, 2, 1)
            return [
                (r.pipeline, r.state, r.scheduled_for, (r.model_extra or {}).get("missed_count"))
                for r in run_lines(app)
            ]

    got = asyncio.run(body())
    after = sorted((p, s, t, n) for p, s, t, n in got if t and t > utc(2026, 6, 1, 6))
    assert after == sorted(
        [
            ("catchup", "succeeded", utc(2026, 6, 1, 8), None),
            ("catchup", "succeeded", utc(2026, 6, 1, 9), None),
            ("catchup", "succeeded", utc(2026, 6, 1, 10), None),
            ("catchup", "missed", utc(2026, 6, 1, 7), 1),
            ("latest", "succeeded", utc(2026, 6, 1, 10), None),
            ("latest", "missed", utc(2026, 6, 1, 9), 3),
            ("skipper", "missed", utc(2026, 6, 1, 10), 4),
        ]
    )


def test_dst_daily_0230_berlin_runs_once_each_transition_day(
    remote: Remote, tmp_path: Path
) -> None:
    remote.push(
        {
            "pipelines/nightly/pipeline.yaml": "network: none\nschedules: [{cron: '30 2 * * *', timezone: Europe/Berlin}]\n",
            "pipelines/nightly/main.py": script("print('nightly')"),
        }
    )

    async def body() -> list[datetime | None]:
        clock = ManualClock(utc(2026, 3, 28, 23, 0))
        async with reconciler(remote, tmp_path / "data", clock) as app:
            await tick(app, clock, 6 * 3600, 1800)  # the spring-forward night
            clock_ticks = [r.scheduled_for for r in run_lines(app)]
        autumn = ManualClock(utc(2026, 10, 24, 23, 0))
        async with reconciler(remote, tmp_path / "data2", autumn) as app:
            await tick(app, autumn, 6 * 3600, 1800)  # the fall-back night: 02:30 happens twice
            return clock_ticks + [r.scheduled_for for r in run_lines(app)]

    assert asyncio.run(body()) == [utc(2026, 3, 29, 1, 30), utc(2026, 10, 25, 0, 30)]


def test_memory_samples_rise_on_events_and_the_peak_lands_in_the_note(
    remote: Remote, tmp_path: Path
) -> None:
    from tests.sitekit import SseClient, serving

    remote.push(
        {
            "pipelines/hog/pipeline.yaml": "network: none\nresources: {memory: 256Mi}\n",
            "pipelines/hog/main.py": script(
                "hog = []\nfor step in range(8):\n    hog.append(bytearray(16 * 2**20))\n"
                "    hog[-1][::4096] = b'x' * len(hog[-1][::4096])\n"
                "    print('allocated', 16 * (step + 1), 'MiB', flush=True)\n"
                "    time.sleep(0.6)"
            ),
        }
    )

    async def body() -> tuple[list[int], RunLine]:
        async with (
            reconciler(remote, tmp_path / "data", ManualClock(utc(2026, 6, 1))) as app,
            serving(app) as port,
        ):
            remote.push({}, "go\n\nFastflow-Run: hog")
            await app.reconciler.run_pass("push")
            [run] = [r for r in app.supervisor.runs() if r.intent.pipeline == "hog"]
            client = SseClient(port, f"/events?run={run.run_id}")
            await client.connect()
            samples = [
                e.data["memory_bytes"] async for e in client.events() if e.kind == "stats_sampled"
            ]
            await app.supervisor.drain(60)
            [line] = [r for r in run_lines(app) if r.pipeline == "hog"]
            return samples, line

    samples, line = asyncio.run(body())
    assert (
        len(samples) >= 3 and samples[-1] > samples[0] + 32 * 2**20
    )  # rising, as the pipeline allocates
    extra = line.model_extra or {}
    assert line.state == "succeeded"
    assert extra["peak_memory_bytes"] >= 96 * 2**20 and extra["memory_limit_bytes"] == 256 * 2**20
    assert extra["cpu_seconds"] > 0
