"""`fastflow serve` as a real process: a push into a watched repository runs within seconds, the
webhook checks signatures, `kill -9` mid-run loses nothing and records once, SIGTERM leaves the
container running for the next start to adopt."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from reconciler.adapters.gitnotes import NoteStore
from reconciler.core.notes import parse_lines
from reconciler.model.notes import RunLine
from tests.gitdaemon import free_port, git_daemon, served_copy
from tests.githttp import git_http
from tests.gitutil import GitRepo
from tests.servekit import SECRET, Serve, containers, state, wait_for

pytestmark = pytest.mark.docker


def run_lines(repo: Path, commit: str) -> list[RunLine]:
    return [line for line in parse_lines(NoteStore(repo).read(commit)) if isinstance(line, RunLine)]


SLOW = {
    "pipelines/slow/pipeline.yaml": "network: none\non_push: true\n",
    "pipelines/slow/main.py": "import time\nprint('started', flush=True)\ntime.sleep(8)\nprint('finished', flush=True)\n",
}


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
    served = served_copy(
        tmp_path,
        {
            "pipelines/hi/pipeline.yaml": "network: none\non_push: true\n",
            "pipelines/hi/main.py": "print(1)\n",
        },
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
        signed = {"X-Hub-Signature-256": good}
        assert serve.post_oversized("/hooks/git", signed) == 413  # declared length
        assert serve.post_oversized("/hooks/git", signed, chunked_bytes=(1 << 20) + 1) == 413
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


def _serve_with_a_slow_run_in_flight(
    git_repo: GitRepo, serve_factory: Callable[[str], Serve], engine: docker.DockerClient
) -> tuple[Serve, str]:
    """`fastflow serve` on ``git_repo`` with the 8-second SLOW pipeline pushed and its container
    running; the serve and the pushed commit."""
    git_repo.commit({"README.md": "x"})
    serve = serve_factory(str(git_repo.path))
    serve.start()
    head = git_repo.commit(SLOW)
    wait_for(
        lambda: any(state(c) == "running" for c in containers(engine, serve.instance)),
        60,
        "no container started",
    )
    return serve, head


def test_kill_9_mid_run_then_restart_records_the_run_exactly_once(
    git_repo: GitRepo, serve_factory: Callable[[str], Serve], engine: docker.DockerClient
) -> None:
    serve, head = _serve_with_a_slow_run_in_flight(git_repo, serve_factory, engine)
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
    serve, head = _serve_with_a_slow_run_in_flight(git_repo, serve_factory, engine)
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


@pytest.mark.parametrize("given_in", ["env", "url"])
def test_serve_from_an_authenticated_http_remote_never_shows_the_token(
    tmp_path: Path, serve_factory: Callable[[str], Serve], given_in: str
) -> None:
    token = "tok-CANARY-serve-51c2"
    served = served_copy(
        tmp_path,
        {
            "pipelines/hi/pipeline.yaml": "network: none\non_push: true\n",
            "pipelines/hi/main.py": "print(1)\n",
        },
    )
    origin = served / "origin.git"
    with git_http(served, "fastflow", token) as base:
        if given_in == "env":
            serve = serve_factory(f"{base}/origin.git")
            serve.start(env={"FASTFLOW_GIT_USERNAME": "fastflow", "FASTFLOW_GIT_PASSWORD": token})
        else:
            serve = serve_factory(base.replace("://", f"://fastflow:{token}@") + "/origin.git")
            serve.start()
        work = tmp_path / "work"
        subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True)
        (work / "pipelines/hi/main.py").write_text("print('over https-style auth')\n")
        git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "commit", "-qam", "change"], check=True)
        subprocess.run([*git, "push", "-q", "origin", "HEAD:main"], check=True)
        head = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        body = b"{}"
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert serve.post("/hooks/git", body, {"X-Hub-Signature-256": signature}) == 202
        # the run line reaches the remote: notes were pushed back over authenticated HTTP
        wait_for(
            lambda: any(r.state == "succeeded" for r in run_lines(origin, head)),
            90,
            "the run was not recorded at the remote",
        )
        shown = [json.dumps(serve.get(path)[1]) for path in ("/api/state", "/api/runs")]
        assert serve.stop() == 0
    assert [r.log_tail for r in run_lines(origin, head)] == [["over https-style auth"]]
    assert all(token not in text for text in shown)
    assert token not in serve.log.read_text()
    leaked = [
        path
        for path in serve.data.rglob("*")
        if path.is_file() and token.encode() in path.read_bytes()
    ]
    assert leaked == []


def test_an_unreachable_remote_keeps_the_applied_state_and_recovers(
    tmp_path: Path, serve_factory: Callable[[str], Serve]
) -> None:
    served = served_copy(
        tmp_path,
        {
            "pipelines/hi/pipeline.yaml": "network: none\non_push: true\n",
            "pipelines/hi/main.py": "print('first')\n",
        },
    )
    origin = served / "origin.git"
    first = _head(origin)
    port = free_port()
    with git_daemon(served, port) as base:
        serve = serve_factory(f"{base}/origin.git")
        serve.start(interval=1)
        wait_for(lambda: _source(serve)["healthy"], 30, "never healthy")
        assert _source(serve)["applied"]["id"] == first
    # the daemon is gone: passes fail, the applied commit and its pipelines stay
    wait_for(lambda: not _source(serve)["healthy"], 30, "the outage was not noticed")
    source = _source(serve)
    assert "cannot fetch" in source["last_pass"]["error"]
    assert source["applied"]["id"] == first
    assert [p["name"] for p in serve.get("/api/state")[1]["pipelines"]] == ["hi"]
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True)
    (work / "pipelines/hi/main.py").write_text("print('after the outage')\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "commit", "-qam", "change during the outage"], check=True)
    subprocess.run([*git, "push", "-q", "origin", "HEAD:main"], check=True)
    second = _head(origin)
    with git_daemon(served, port):  # back at the same address: the retry picks it up
        wait_for(lambda: _source(serve)["healthy"], 60, "did not recover")
        wait_for(
            lambda: any(
                r.state == "succeeded" for r in run_lines(serve.data / "mirror.git", second)
            ),
            60,
            "the commit pushed during the outage did not run",
        )
        assert _source(serve)["applied"]["id"] == second
        assert serve.stop() == 0
    log = serve.log.read_text()
    assert "reconcile pass failed" in log and "cannot fetch" in log


def _head(bare: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(bare), "rev-parse", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _source(serve: Serve) -> dict[str, Any]:
    return serve.get("/api/state")[1]["source"]  # type: ignore[no-any-return]
