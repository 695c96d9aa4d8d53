"""`fastflow serve` as a real process: a push into a watched repository runs within seconds, the
webhook checks signatures, `kill -9` mid-run loses nothing and records once, SIGTERM leaves the
container running for the next start to adopt."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from reconciler.adapters.gitnotes import NoteStore
from reconciler.core.notes import parse_lines
from reconciler.model.notes import RunLine
from tests.dockerutil import DOCKER_HOST, require_engine
from tests.gitdaemon import free_port, git_daemon
from tests.gitutil import GitRepo

pytestmark = pytest.mark.docker
SECRET = "hook-secret-1"


class Serve:
    def __init__(self, repo: str, data: Path, instance: str) -> None:
        self.repo, self.data, self.instance = repo, data, instance
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.log = data.parent / f"serve-{instance}.log"

    def start(self, interval: float = 3600) -> None:
        env = {
            **os.environ,
            "FASTFLOW_DOCKER_HOST": DOCKER_HOST,
            "FASTFLOW_WEBHOOK_SECRET": SECRET,
            "FASTFLOW_INSTANCE": self.instance,
        }
        command = [
            sys.executable,
            "-m",
            "reconciler",
            "-v",
            "serve",
            "--repo",
            self.repo,
            "--data",
            str(self.data),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--interval",
            str(interval),
        ]
        with open(self.log, "a") as handle:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, env=env, text=True
            )
        wait_for(lambda: self.get("/readyz")[0] == 200, 60, "serve did not get ready")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=5
            ) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)


def wait_for(predicate: Callable[[], bool], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(message)


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    require_engine()
    client = docker.DockerClient(base_url=DOCKER_HOST, timeout=30)
    yield client
    client.close()


def containers(client: docker.DockerClient, instance: str) -> list[Any]:
    # sparse: no inspect per container, so one removed meanwhile is no error
    return client.containers.list(
        all=True, sparse=True, filters={"label": f"io.fastflow.instance={instance}"}
    )


def state(container: Any) -> str:
    return str(container.attrs.get("State"))


def run_lines(repo: Path, commit: str) -> list[RunLine]:
    return [line for line in parse_lines(NoteStore(repo).read(commit)) if isinstance(line, RunLine)]


SLOW = {
    "pipelines/slow/pipeline.yaml": "network: none\non_push: true\n",
    "pipelines/slow/main.py": "import time\nprint('started', flush=True)\ntime.sleep(8)\nprint('finished', flush=True)\n",
}


@pytest.fixture
def serve_factory(tmp_path: Path, engine: docker.DockerClient) -> Iterator[Callable[[str], Serve]]:
    made: list[Serve] = []

    def make(repo: str) -> Serve:
        item = Serve(repo, tmp_path / "data", f"t{uuid.uuid4().hex[:8]}")
        made.append(item)
        return item

    yield make
    for item in made:
        if item.process is not None and item.process.poll() is None:
            item.process.kill()
            item.process.wait()
        for container in containers(engine, item.instance):
            container.remove(force=True)


def test_push_into_a_watched_repository_runs_and_is_recorded(
    git_repo: GitRepo, serve_factory: Callable[[str], Serve]
) -> None:
    git_repo.commit(
        {
            "pipelines/hi/pipeline.yaml": "network: none\non_push: true\n",
            "pipelines/hi/main.py": "print(1)\n",
        }
    )
    serve = serve_factory(str(git_repo.path))
    serve.start()
    head = git_repo.commit({"pipelines/hi/main.py": "print('hello from a push')\n"})
    wait_for(
        lambda: any(r.state == "succeeded" for r in run_lines(git_repo.path, head)),
        60,
        "the push did not run",
    )
    [line] = run_lines(git_repo.path, head)
    assert (line.trigger, line.log_tail) == ("push", ["hello from a push"])
    status, runs = serve.get("/api/runs")
    assert status == 200 and runs["runs"][0]["run_id"] == line.run_id
    assert serve.stop() == 0


def test_webhook_with_good_and_bad_signatures(
    tmp_path: Path, serve_factory: Callable[[str], Serve]
) -> None:
    seed = GitRepo(tmp_path / "seed")
    seed.commit(
        {
            "pipelines/hi/pipeline.yaml": "network: none\non_push: true\n",
            "pipelines/hi/main.py": "print(1)\n",
        }
    )
    served = tmp_path / "served"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(seed.path), str(served / "origin.git")], check=True
    )
    with git_daemon(served) as base:
        serve = serve_factory(f"{base}/origin.git")
        serve.start(interval=3600)  # only the webhook makes it fetch
        work = tmp_path / "work"
        subprocess.run(
            ["git", "clone", "-q", f"{base}/origin.git", str(work)], check=True, capture_output=True
        )
        (work / "pipelines/hi/main.py").write_text("print('via webhook')\n")
        git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "commit", "-qam", "change"], check=True)
        subprocess.run([*git, "push", "-q", "origin", "HEAD:main"], check=True, capture_output=True)
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert serve.post("/hooks/git", body, {"X-Hub-Signature-256": "sha256=" + "0" * 64}) == 401
        assert serve.post("/hooks/git", body, {}) == 401
        assert serve.post("/hooks/git", b"x" * (2 << 20), {"X-Hub-Signature-256": good}) == 413
        time.sleep(1)
        assert serve.get("/api/runs")[1]["runs"] == []  # nothing fetched yet
        gitea = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert serve.post("/hooks/git", body, {"X-Gitea-Signature": gitea}) == 202
        wait_for(
            lambda: any(r["state"] == "succeeded" for r in serve.get("/api/runs")[1]["runs"]),
            60,
            "no run",
        )
        assert serve.post("/hooks/git", body, {"X-Hub-Signature-256": good}) == 202
        serve.stop()


def test_kill_9_mid_run_then_restart_records_the_run_exactly_once(
    git_repo: GitRepo, serve_factory: Callable[[str], Serve], engine: docker.DockerClient
) -> None:
    git_repo.commit({"README.md": "x"})
    serve = serve_factory(str(git_repo.path))
    serve.start()
    head = git_repo.commit(SLOW)
    wait_for(
        lambda: any(state(c) == "running" for c in containers(engine, serve.instance)),
        60,
        "no container started",
    )
    assert serve.stop(signal.SIGKILL) == -signal.SIGKILL
    wait_for(
        lambda: all(state(c) == "exited" for c in containers(engine, serve.instance)),
        60,
        "container did not end",
    )
    serve.start()
    wait_for(
        lambda: containers(engine, serve.instance) == [],
        60,
        "the finished container was not removed",
    )
    wait_for(lambda: run_lines(git_repo.path, head) != [], 30, "the run was not recorded")
    lines = run_lines(git_repo.path, head)
    assert [(r.state, r.log_tail) for r in lines] == [("succeeded", ["started", "finished"])]
    serve.stop()
    serve.start()  # a third start finds nothing to do and records nothing again
    time.sleep(2)
    assert len(run_lines(git_repo.path, head)) == 1
    serve.stop()


def test_sigterm_leaves_the_container_running_and_the_next_start_adopts_it(
    git_repo: GitRepo, serve_factory: Callable[[str], Serve], engine: docker.DockerClient
) -> None:
    git_repo.commit({"README.md": "x"})
    serve = serve_factory(str(git_repo.path))
    serve.start()
    head = git_repo.commit(SLOW)
    wait_for(
        lambda: any(state(c) == "running" for c in containers(engine, serve.instance)),
        60,
        "no container started",
    )
    assert serve.stop(signal.SIGTERM) == 0
    [container] = containers(engine, serve.instance)
    assert state(container) == "running"  # a graceful stop never kills user work
    serve.start()
    wait_for(
        lambda: containers(engine, serve.instance) == [],
        60,
        "the adopted run was not finished and removed",
    )
    wait_for(lambda: run_lines(git_repo.path, head) != [], 30, "the run was not recorded")
    lines = run_lines(git_repo.path, head)
    assert [(r.state, r.trigger, r.log_tail) for r in lines] == [
        ("succeeded", "push", ["started", "finished"])
    ]
    serve.stop()
