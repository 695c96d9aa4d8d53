#!/usr/bin/env -S uv run --frozen python
"""Benchmark: `git push` into a watched repository -> container started -> run recorded in the note.

The reconciler runs in-process (watcher, reconcile pass, supervisor, Docker executor through the
proxy). Each sample commits a change to an `on_push` pipeline in a clone and pushes it into the
watched bare repository; the clock starts just before `git push`. Measured:
  push -> started  : the container's StartedAt (the engine's clock, same host) minus the push time
  push -> recorded : the run line is in the commit's note (it is written before RUN_FINISHED)
Baseline in the same run, alternating: a bare docker-py launch of the same container (same image,
command, mounts, limits): launch -> started, and launch -> exited + logs read + removed.
Targets (issue 6): push -> started < 1 s; push -> recorded within 25% of the bare launch.

Usage: bench/push_to_run.py [SAMPLES]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from bench.rig import COMMAND, bare_run_kwargs  # noqa: E402
from reconciler.core.notes import parse_lines, runs_of  # noqa: E402
from reconciler.executors.docker import DockerExecutor, DockerSettings  # noqa: E402
from reconciler.executors.dockerdata import docker_time  # noqa: E402
from reconciler.model.events import RUN_FINISHED  # noqa: E402
from reconciler.runtime.app import App, ServeOptions  # noqa: E402
from reconciler.settings import Settings  # noqa: E402

HOST = os.environ.get("FASTFLOW_DOCKER_HOST", "tcp://127.0.0.1:2375")
IMAGE = os.environ.get("FASTFLOW_RUNNER_IMAGE", "fastflow-runner:local")
SCRIPT = "# /// script\n# dependencies = []\n# ///\nprint('hello {n}')\n"


def _epoch(text: str) -> float:
    value = docker_time(text)
    assert value is not None
    return value


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def bare_launch(client: docker.DockerClient, workspace: Path, cache: Path) -> tuple[float, float]:
    memory = 2**30
    wall = time.time()
    start = time.perf_counter()
    container = client.containers.run(
        IMAGE, COMMAND, **bare_run_kwargs(workspace, cache, memory=memory, pids=512)
    )
    container.reload()
    started = _epoch(container.attrs["State"]["StartedAt"]) - wall
    container.wait()
    container.logs(stdout=True, stderr=False)
    container.logs(stdout=False, stderr=True)
    container.remove()
    return started, time.perf_counter() - start


async def main_async(samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        watched = root / "watched.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(watched)], check=True)
        work = root / "work"
        subprocess.run(
            ["git", "clone", "-q", str(watched), str(work)], check=True, capture_output=True
        )
        (work / "pipelines/hello").mkdir(parents=True)
        (work / "pipelines/hello/pipeline.yaml").write_text(
            "on_push: true\nnetwork: none\nconcurrency: allow\n"
        )
        (work / "pipelines/hello/main.py").write_text(SCRIPT.format(n=0))
        git("add", "-A", cwd=work)
        git("commit", "-qm", "init", cwd=work)
        git("push", "-q", "origin", "HEAD:main", cwd=work)

        data = root / "data"
        executor = DockerExecutor(
            DockerSettings(instance=f"bench-{uuid.uuid4().hex[:6]}", data_dir=data, base_url=HOST)
        )
        app = App(
            ServeOptions(source=str(watched), interval_s=3600, push_notes=False),
            Settings(data_dir=data),
            executor,
        )
        await app.start()
        stop = asyncio.Event()
        loop_task = asyncio.create_task(app.run(stop))
        subscription = app.bus.subscribe()
        client = docker.DockerClient(base_url=HOST, timeout=120)
        bare_ws = root / "bare"
        bare_ws.mkdir(mode=0o755)
        (bare_ws / "main.py").write_text(SCRIPT.format(n="bare"))
        (bare_ws / "main.py").chmod(0o644)
        await asyncio.to_thread(bare_launch, client, bare_ws, executor.settings.uv_cache)  # warm up
        to_started, to_recorded, bare_started, bare_total = [], [], [], []
        for n in range(1, samples + 2):
            (work / "pipelines/hello/main.py").write_text(SCRIPT.format(n=n))
            git("commit", "-qam", f"change {n}", cwd=work)
            pushed_wall = time.time()
            pushed = time.perf_counter()
            await asyncio.to_thread(git, "push", "-q", "origin", "HEAD:main", cwd=work)
            recorded = None
            async for event in subscription:
                if event.kind == RUN_FINISHED:
                    recorded = time.perf_counter()
                    assert event.data["state"] == "succeeded", event.data
                    break
            assert recorded is not None
            [line] = [
                r
                for r in runs_of(parse_lines(app.store.read(app.reconciler.applied_commit or "")))
                if r.trigger == "push"
            ]
            assert line.started_at is not None
            started = pushed + (line.started_at.timestamp() - pushed_wall)
            if n > 1:  # the first push also warms the reconciler's caches
                to_started.append(started - pushed)
                to_recorded.append(recorded - pushed)
                b_started, b_total = await asyncio.to_thread(
                    bare_launch, client, bare_ws, executor.settings.uv_cache
                )
                bare_started.append(b_started)
                bare_total.append(b_total)
        stop.set()
        await loop_task
        await app.shutdown()
        executor.close()
        client.close()

    def ms(values: list[float]) -> str:
        low, high = min(values) * 1000, max(values) * 1000
        return (
            f"median {statistics.median(values) * 1000:7.1f} ms  (min {low:6.1f}, max {high:6.1f})"
        )

    print(
        f"{samples} pushes into a watched repository, each alternated with a bare docker-py launch:"
    )
    print(f"  push -> container started  : {ms(to_started)}   (target < 1000 ms)")
    print(f"  push -> run recorded       : {ms(to_recorded)}")
    print(f"  bare launch -> started     : {ms(bare_started)}")
    print(f"  bare launch -> removed     : {ms(bare_total)}")
    ratio = statistics.median(to_recorded) / statistics.median(bare_total)
    print(
        f"  ratio recorded / bare total: {ratio:.3f}  (reconciler overhead {(ratio - 1) * 100:.1f}%, target < 25%)"
    )
    print(
        f"  ratio started / bare start : {statistics.median(to_started) / statistics.median(bare_started):.3f}"
    )


if __name__ == "__main__":
    asyncio.run(main_async(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
