#!/usr/bin/env -S uv run --frozen python
"""Benchmark: launching runs through the executor vs a bare docker-py launch, and uv's warm overhead.

1. The same trivial PEP 723 pipeline, N times each, alternating:
     executor : reconciler.runtime.runs.execute (launch, follow logs, wait, outcome, remove)
     bare     : docker-py containers.run(detach) + wait + logs + remove, same image, command,
                mounts and limits
   prints both medians and executor/bare (target: at most 1.15).
2. Inside one container with a warm uv cache: `uv run --script` of a script with a few real
   dependencies vs bare `python` (the interpreter of the environment uv built for it) running the
   same script, M times each, so both import the same packages and the difference is uv's own
   work (target: overhead < 100 ms).

Needs the rig (scripts/setup). Usage: bench/launch.py [N] [M]. Env: FASTFLOW_DOCKER_HOST,
FASTFLOW_CA_BUNDLE (for the one-time dependency download).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from bench.rig import COMMAND, bare_run_kwargs  # noqa: E402
from reconciler.executors.docker import DockerExecutor, DockerSettings  # noqa: E402
from reconciler.model.runs import RunRequest, Trigger  # noqa: E402
from reconciler.model.specs import NetworkMode, Resources  # noqa: E402
from reconciler.runtime.runs import execute  # noqa: E402

HOST = os.environ.get("FASTFLOW_DOCKER_HOST", "tcp://127.0.0.1:2375")
IMAGE = os.environ.get("FASTFLOW_RUNNER_IMAGE", "fastflow-runner:local")
CA = os.environ.get("FASTFLOW_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
TRIVIAL = "# /// script\n# dependencies = []\n# ///\nprint('hello')\n"
DEPS = (
    "# /// script\n# dependencies = ['six', 'tabulate', 'python-dateutil']\n# ///\n"
    "import sys, six, tabulate, dateutil\nprint(sys.executable if '--which' in sys.argv else 'ok')\n"
)


def workspace(root: Path, files: dict[str, str]) -> Path:
    path = root / uuid.uuid4().hex[:8]
    path.mkdir(mode=0o755)
    for name, text in files.items():
        (path / name).write_text(text)
        (path / name).chmod(0o644)
    return path


def request(ws: Path, network: NetworkMode = NetworkMode.NONE) -> RunRequest:
    return RunRequest(
        run_id=f"bench-{uuid.uuid4().hex[:10]}",
        pipeline="bench",
        commit="0" * 40,
        trigger=Trigger.MANUAL,
        image=IMAGE,
        command=COMMAND,
        env={"UV_OFFLINE": "1", "HOME": "/tmp", "UV_CACHE_DIR": "/uv-cache"},
        workspace=str(ws),
        resources=Resources(memory=512 * 2**20, cpus=1.0, pids=256),
        network=network,
        timeout_s=120,
    )


def bare_launch(client: docker.DockerClient, executor: DockerExecutor, ws: Path) -> float:
    start = time.perf_counter()
    memory = 512 * 2**20
    container = client.containers.run(
        IMAGE, COMMAND, **bare_run_kwargs(ws, executor.settings.uv_cache, memory=memory, pids=256)
    )
    assert container.wait()["StatusCode"] == 0
    assert container.logs(stdout=True, stderr=False) == b"hello\n"
    container.remove()
    return time.perf_counter() - start


def executor_launch(executor: DockerExecutor, ws: Path) -> float:
    lines: list[str] = []
    start = time.perf_counter()
    outcome = asyncio.run(execute(executor, request(ws), lambda line: lines.append(line.text)))
    elapsed = time.perf_counter() - start
    assert outcome.state.value == "succeeded" and lines == ["hello"], (outcome, lines)
    return elapsed


def warm_overhead(
    client: docker.DockerClient, executor: DockerExecutor, root: Path, repeats: int
) -> tuple[float, float]:
    ws = workspace(root, {"main.py": DEPS})
    warm = request(ws, NetworkMode.BRIDGE)
    warm = warm.model_copy(update={"env": {**warm.env, "UV_OFFLINE": "0"}})
    outcome = asyncio.run(execute(executor, warm, lambda line: None))  # fills the uv cache
    assert outcome.state.value == "succeeded", outcome
    loop = (
        't() { s=$(date +%s%N); "$@" >/dev/null 2>&1 || exit 9; e=$(date +%s%N); echo $1 $(( (e - s) / 1000 )); }; '
        "PY=$(uv run --no-project --script /app/main.py --which); "
        f"for i in $(seq {repeats}); do t uv run --no-project --script /app/main.py; t $PY /app/main.py; done"
    )
    container = client.containers.run(
        IMAGE,
        ["sh", "-c", loop],
        detach=True,
        user="10001:10001",
        network_mode="none",
        environment={"UV_OFFLINE": "1", "HOME": "/tmp", "UV_CACHE_DIR": "/uv-cache"},
        volumes={
            str(ws): {"bind": "/app", "mode": "ro"},
            str(executor.settings.uv_cache): {"bind": "/uv-cache", "mode": "rw"},
        },
        tmpfs={"/tmp": "rw,exec"},
    )
    assert container.wait()["StatusCode"] == 0, container.logs()
    samples: dict[str, list[float]] = {"uv": [], "python": []}
    for line in container.logs().decode().splitlines():
        tool, micros = line.split()
        samples["uv" if tool == "uv" else "python"].append(int(micros) / 1e6)
    container.remove()
    return statistics.median(samples["uv"]), statistics.median(samples["python"])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    client = docker.DockerClient(base_url=HOST, timeout=120)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        settings = DockerSettings(
            instance=f"bench-{uuid.uuid4().hex[:6]}",
            data_dir=root / "data",
            base_url=HOST,
            ca_bundle=Path(CA) if CA and Path(CA).is_file() else None,
        )
        executor = DockerExecutor(settings)
        ws = workspace(root, {"main.py": TRIVIAL})
        executor_launch(executor, ws)  # warm both paths once
        bare_launch(client, executor, ws)
        ours, bare = [], []
        for _ in range(n):
            ours.append(executor_launch(executor, ws))
            bare.append(bare_launch(client, executor, ws))
        o, b = statistics.median(ours), statistics.median(bare)
        print(f"launch to removed, trivial PEP 723 pipeline, {n} runs each (alternating):")
        print(
            f"  executor          : median {o * 1000:7.1f} ms  (p90 {sorted(ours)[int(n * 0.9) - 1] * 1000:7.1f})"
        )
        print(
            f"  bare docker-py    : median {b * 1000:7.1f} ms  (p90 {sorted(bare)[int(n * 0.9) - 1] * 1000:7.1f})"
        )
        print(f"  ratio executor/bare: {o / b:.3f}  (target <= 1.15)")
        uv, py = warm_overhead(client, executor, root, m)
        print(f"inside one container, warm cache, {m} runs each:")
        print(f"  uv run --script (six, tabulate, python-dateutil): median {uv * 1000:7.1f} ms")
        print(f"  the same script with the env's own python        : median {py * 1000:7.1f} ms")
        print(f"  uv overhead: {(uv - py) * 1000:.1f} ms  (target < 100 ms)")
        executor.close()
    client.close()


if __name__ == "__main__":
    main()
