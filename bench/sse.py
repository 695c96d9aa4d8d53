#!/usr/bin/env -S uv run --frozen python
"""Benchmark: N concurrent SSE clients (default 1,000) on one run's live log.

A server process runs the real reconciler and status site (uvicorn) with the in-memory executor;
once all clients are subscribed, it starts a run that prints LINES lines at RATE lines/s. This
process holds the clients (raw sockets, the real `/events?run=` stream). Delivery latency is the
time from a line's timestamp (taken when the executor emitted it) to its arrival at a client,
over every line at every client. Baseline in the same run: the same measurement with 1 client.
Server memory (RSS) is read before the clients connect, with them connected, and after the run.
Targets (issue 7): p99 < 250 ms on this 2-core machine; memory growth bounded.

Usage: bench/sse.py [CLIENTS] [LINES] [RATE]
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.core.runids import make_run_id  # noqa: E402
from reconciler.model.runs import Trigger  # noqa: E402
from tests.gitdaemon import free_port  # noqa: E402
from tests.sitekit import SseClient  # noqa: E402

SERVER = r"""
import asyncio, resource, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from reconciler.executors.memory import MemoryExecutor, Program
from reconciler.model.runs import Stream, Trigger
from reconciler.runtime.app import App, ServeOptions
from reconciler.runtime.activeruns import RunIntent
from reconciler.settings import Settings
from tests.gitutil import GitRepo
from tests.sitekit import serving

async def main(tmp, port, clients, lines, rate):
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    repo = GitRepo(Path(tmp) / "repo")
    repo.commit({"pipelines/talk/pipeline.yaml": "concurrency: allow\n", "pipelines/talk/main.py": ""})
    executor = MemoryExecutor()
    executor.pipeline_programs["talk"] = [Program(output=tuple((Stream.STDOUT, f"line {i}") for i in range(lines)),
                                                 line_delay_s=1 / rate)]
    app = App(ServeOptions(source=str(repo.path), push_notes=False), Settings(data_dir=Path(tmp) / "data"), executor)
    await app.start()
    import socket, uvicorn
    from reconciler.site import create_site
    sock = socket.socket(); sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(create_site(app), log_level="warning", lifespan="off", backlog=4096))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for key in ("one", "many"):
        print("ready", flush=True)
        want = 1 if key == "one" else clients
        while app.bus.subscriber_count < want + 1:  # + the metrics follower
            await asyncio.sleep(0.05)
        print("subscribed", flush=True)
        await app.supervisor.submit(RunIntent("talk", Trigger.MANUAL, key), app.applied["talk"])
        await app.supervisor.drain()
        while app.bus.subscriber_count > 1:
            await asyncio.sleep(0.05)
    print("done", flush=True)
    server.should_exit = True
    await task
    await app.shutdown()

asyncio.run(main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])))
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def listen(port: int, run_id: str, latencies: list[float]) -> None:
    client = SseClient(port, f"/events?run={run_id}")
    for attempt in range(50):
        try:
            await client.connect()
            break
        except (ConnectionError, OSError):
            await asyncio.sleep(0.05 * (attempt + 1))
    async for event in client.events():
        if event.kind == "log_line":
            latencies.append(time.time() - datetime.fromisoformat(event.data["at"]).timestamp())


async def phase(
    process: subprocess.Popen[str], port: int, key: str, clients: int
) -> tuple[list[float], int]:
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    latencies: list[float] = []
    run_id = make_run_id("talk", Trigger.MANUAL, key)
    tasks = [asyncio.create_task(listen(port, run_id, latencies)) for _ in range(clients)]
    line = await asyncio.to_thread(process.stdout.readline)
    assert line.strip() == "subscribed", line
    connected_rss = rss_kib(process.pid)
    await asyncio.gather(*tasks)
    return latencies, connected_rss


def report(name: str, latencies: list[float], expected: int) -> float:
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    print(
        f"{name:>12}: {len(latencies)}/{expected} lines delivered, latency p50 {statistics.median(ordered) * 1000:7.1f} ms"
        f"  p99 {p99 * 1000:7.1f} ms  max {ordered[-1] * 1000:7.1f} ms"
    )
    return p99


async def main(clients: int, lines: int, rate: float) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SERVER,
                str(ROOT),
                tmp,
                str(port),
                str(clients),
                str(lines),
                str(rate),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            before = rss_kib(process.pid)
            baseline, _ = await phase(process, port, "one", 1)
            idle = rss_kib(process.pid)
            many, connected = await phase(process, port, "many", clients)
            after = rss_kib(process.pid)
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "done"
        finally:
            process.wait(timeout=60)
    print(f"{clients} SSE clients on one run's log, {lines} lines at {rate:g} lines/s:")
    base_p99 = report("1 client", baseline, lines)
    p99 = report(f"{clients} clients", many, lines * clients)
    print(
        f"ratio p99 {clients} clients / 1 client: {p99 / max(base_p99, 1e-6):.1f}   (target p99 < 250 ms)"
    )
    print(
        f"server RSS: start {before / 1024:.1f} MiB, after 1 client {idle / 1024:.1f} MiB, "
        f"{clients} connected {connected / 1024:.1f} MiB, after the run {after / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]] + [float(a) for a in sys.argv[3:4]]
    asyncio.run(main(*(args + [1000, 200, 20.0][len(args) :])))  # type: ignore[arg-type]
