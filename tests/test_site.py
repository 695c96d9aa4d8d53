"""The status site over HTTP (real uvicorn on 127.0.0.1): the API, SSE fan-out, slow clients,
`Last-Event-ID` resume, `/metrics`, the bearer token; nothing secret in any response."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.fernet import FernetKeys, generate_key
from reconciler.executors.memory import MemoryExecutor, Program
from reconciler.model.runs import Stream
from reconciler.runtime.app import App, ServeOptions
from reconciler.settings import Settings
from tests.gitutil import GitRepo
from tests.sitekit import SseClient, SseEvent, serving

CANARY = "canary-site-5b2e9d"


@asynccontextmanager
async def site_app(
    git_repo: GitRepo, tmp: Path, program: Program, token: str | None = None
) -> AsyncIterator[tuple[App, int]]:
    key = generate_key()
    git_repo.commit(
        {
            "pipelines/talk/pipeline.yaml": "concurrency: allow\nenv: {MODE: loud}\nschedules: [{cron: '0 3 * * *'}]\n",
            "pipelines/talk/main.py": "",
            "pipelines/talk/secrets.fernet.yaml": f"TOKEN: {FernetKeys([key]).encrypt(CANARY)}\n",
        }
    )
    executor = MemoryExecutor()
    executor.pipeline_programs["talk"] = [program]
    import os

    os.environ["FASTFLOW_FERNET_KEYS"] = key
    try:
        app = App(
            ServeOptions(source=str(git_repo.path), push_notes=False),
            Settings(data_dir=tmp / "data"),
            executor,
        )
        await app.start()
    finally:
        del os.environ["FASTFLOW_FERNET_KEYS"]
    try:
        async with serving(app, token=token) as port:
            yield app, port
    finally:
        await app.shutdown()


def lines_program(count: int, delay: float = 0.002, text: str = "line") -> Program:
    return Program(
        output=tuple((Stream.STDOUT, f"{text} {i}") for i in range(count)), line_delay_s=delay
    )


async def start_run(app: App) -> str:
    from reconciler.model.runs import Trigger
    from reconciler.runtime.activeruns import RunIntent

    run_id = await app.supervisor.submit(
        RunIntent("talk", Trigger.MANUAL, "k1"), app.applied["talk"]
    )
    assert run_id is not None
    return run_id


async def collect(client: SseClient, limit: int | None = None) -> list[SseEvent]:
    found = []
    stream = client.events()
    try:
        async for event in stream:
            found.append(event)
            if limit is not None and len(found) >= limit:
                break
    finally:
        await stream.aclose()
    return found


async def follow_like_a_browser(port: int, path: str) -> list[SseEvent]:
    """Reconnect with Last-Event-ID whenever the stream ends early, as EventSource does."""
    found: list[SseEvent] = []
    last: int | None = None
    while not found or found[-1].kind != "run_finished":
        client = SseClient(port, path, last_event_id=last)
        await client.connect()
        found += await collect(client)
        last = client.last_event_id
    return found


def get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def test_two_clients_both_receive_every_line_and_the_stream_ends(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    async def body() -> None:
        async with site_app(git_repo, tmp_path, lines_program(300)) as (app, port):
            run_id = await start_run(app)
            clients = [SseClient(port, f"/events?run={run_id}") for _ in range(2)]
            for client in clients:
                await client.connect()
            results = await asyncio.wait_for(asyncio.gather(*(collect(c) for c in clients)), 30)
            for events in results:
                texts = [e.data["text"] for e in events if e.kind == "log_line"]
                assert texts == [f"line {i}" for i in range(300)]
                assert events[-1].kind == "run_finished"  # the finished run's stream ends
                ids = [e.id for e in events if e.id is not None]
                assert ids == sorted(ids) and len(set(ids)) == len(ids)

    run(body)


def test_a_client_that_stops_reading_slows_neither_the_run_nor_the_other_client(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    async def body() -> None:
        program = lines_program(8_000, delay=0.0002, text="x" * 200)
        async with site_app(git_repo, tmp_path, program) as (app, port):
            stuck = SseClient(port, "/events?run=pending")
            reader = SseClient(port, "/events?run=pending")
            run_id = await start_run(app)
            stuck.path = reader.path = f"/events?run={run_id}"
            await stuck.connect(receive_buffer=4096)  # connects, then never reads
            await reader.connect()
            reader.close()
            events = await asyncio.wait_for(
                follow_like_a_browser(port, f"/events?run={run_id}"), 60
            )
            texts = [e.data["text"] for e in events if e.kind == "log_line"]
            assert texts == [f"{'x' * 200} {i}" for i in range(8_000)]  # every line once, in order
            await asyncio.wait_for(app.supervisor.drain(), 30)  # the run ended meanwhile
            stuck.close()

    run(body)


def test_reconnect_with_last_event_id_resumes_without_gaps_or_repeats(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    async def body() -> None:
        async with site_app(git_repo, tmp_path, lines_program(400, delay=0.003)) as (app, port):
            run_id = await start_run(app)
            first = SseClient(port, f"/events?run={run_id}")
            await first.connect()
            head = await asyncio.wait_for(collect(first, limit=120), 30)
            first.close()
            second = SseClient(port, f"/events?run={run_id}", last_event_id=first.last_event_id)
            await second.connect()
            tail = await asyncio.wait_for(collect(second), 30)
            texts = [e.data["text"] for e in head + tail if e.kind == "log_line"]
            assert texts == [f"line {i}" for i in range(400)]

    run(body)


def test_api_and_metrics_show_runs_but_no_secret_or_env_value(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    async def body() -> None:
        program = Program(output=((Stream.STDOUT, f"token is {CANARY}"),))
        async with site_app(git_repo, tmp_path, program) as (app, port):
            run_id = await start_run(app)
            await app.supervisor.drain(10)
            await asyncio.sleep(0.2)  # let the metrics task observe the events
            status, state = await asyncio.to_thread(get, port, "/api/state")
            assert status == 200
            document: dict[str, Any] = json.loads(state)
            [pipeline] = document["pipelines"]
            assert (
                pipeline["secrets"] == ["TOKEN"]
                and pipeline["schedules"][0]["words"] == "every day at 03:00 (UTC)"
            )
            assert document["commits"][0]["statuses"]
            _, runs = await asyncio.to_thread(get, port, "/api/runs?pipeline=talk")
            assert json.loads(runs)["runs"][0]["run_id"] == run_id
            _, log = await asyncio.to_thread(get, port, f"/api/runs/{run_id}/log")
            assert json.loads(log)["lines"][0]["text"] == "token is ***"
            _, metrics = await asyncio.to_thread(get, port, "/metrics")
            assert 'fastflow_runs_total{pipeline="talk",state="succeeded"} 1.0' in metrics
            assert "fastflow_queue_length 0.0" in metrics
            everything = (
                state
                + runs
                + log
                + metrics
                + (await asyncio.to_thread(get, port, f"/api/runs/{run_id}"))[1]
            )
            assert CANARY not in everything and "loud" not in everything
            assert (await asyncio.to_thread(get, port, "/api/runs/nope"))[0] == 404
            page = (await asyncio.to_thread(get, port, "/"))[1]
            assert "<title>Fast-Flow</title>" in page

    run(body)


def test_state_names_a_commit_that_could_not_apply_until_one_does(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    async def body() -> None:
        async with site_app(git_repo, tmp_path, Program()) as (app, port):
            applied = app.reconciler.applied_commit
            broken = git_repo.commit({"fastflow.yaml": "settings: {max_parallel_runs: lots}\n"})
            await app.reconciler.run_pass("test")
            source = json.loads((await asyncio.to_thread(get, port, "/api/state"))[1])["source"]
            assert source["applied"]["id"] == applied
            assert source["rejected"]["commit"] == broken
            [problem] = source["rejected"]["problems"]
            assert problem["text"].startswith("fastflow.yaml:1:31: settings.max_parallel_runs:")
            for _ in range(200):  # until the metrics task has observed the pass
                metrics = (await asyncio.to_thread(get, port, "/metrics"))[1]
                if 'result="ok"' in metrics:
                    break
                await asyncio.sleep(0.02)
            assert "fastflow_tracked_commit_applied 0.0" in metrics
            assert "fastflow_source_up 1.0" in metrics
            assert 'fastflow_passes_total{result="ok"}' in metrics
            git_repo.commit({"fastflow.yaml": "settings: {max_parallel_runs: 2}\n"})
            await app.reconciler.run_pass("test")
            source = json.loads((await asyncio.to_thread(get, port, "/api/state"))[1])["source"]
            assert source["rejected"] is None and source["applied"]["id"] != applied
            metrics = (await asyncio.to_thread(get, port, "/metrics"))[1]
            assert "fastflow_tracked_commit_applied 1.0" in metrics

    run(body)


def test_bearer_token_guards_everything_but_health(git_repo: GitRepo, tmp_path: Path) -> None:
    async def body() -> None:
        async with site_app(git_repo, tmp_path, Program(), token="t0ken") as (app, port):
            assert (await asyncio.to_thread(get, port, "/api/state"))[0] == 401
            assert (await asyncio.to_thread(get, port, "/api/state", "t0ken"))[0] == 200
            assert (await asyncio.to_thread(get, port, "/api/state?token=t0ken"))[0] == 200
            assert (await asyncio.to_thread(get, port, "/healthz"))[0] == 200
            assert (await asyncio.to_thread(get, port, "/readyz"))[0] == 200

    run(body)


@pytest.mark.parametrize("path", ["/api/runs?limit=x", "/events?last_event_id=abc"])
def test_bad_query_values_do_not_crash(git_repo: GitRepo, tmp_path: Path, path: str) -> None:
    async def body() -> None:
        async with site_app(git_repo, tmp_path, Program()) as (app, port):
            if path.startswith("/events"):
                client = SseClient(port, path)
                await client.connect()
                client.close()
            else:
                assert (await asyncio.to_thread(get, port, path))[0] == 400

    run(body)


def test_a_subscriber_that_never_reads_is_cut_off_and_never_blocks_publishing() -> None:
    from reconciler.runtime.bus import Bus

    async def body() -> None:
        bus = Bus()
        stuck = bus.subscribe(run_id="r", maxsize=50)
        reader = bus.subscribe(run_id="r", maxsize=10_000)
        for index in range(5_000):
            bus.publish("log_line", {"text": str(index)}, run_id="r")  # never awaits, never blocks
        assert stuck.lagged and stuck.closed and bus.subscriber_count == 1
        reader.close()
        texts = [event.data["text"] async for event in reader]
        assert texts == [str(i) for i in range(5_000)]
        resumed = bus.subscribe(run_id="r", after_id=4_000)  # what a cut-off client gets back
        resumed.close()
        assert [e.data["text"] async for e in resumed][:2] == ["4000", "4001"]

    run(body)
