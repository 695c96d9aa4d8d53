"""`fastflow run PIPELINE`: a real container through the proxy, its log on the terminal, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dockerutil import DOCKER_HOST, require_engine
from tests.gitutil import GitRepo

pytestmark = pytest.mark.docker


def fastflow(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FASTFLOW_DOCKER_HOST": DOCKER_HOST, "FASTFLOW_DATA": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture
def repo(git_repo: GitRepo) -> GitRepo:
    require_engine()
    git_repo.commit(
        {
            "pipelines/hello/pipeline.yaml": "network: none\nargs: [world]\nenv: {GREETING: hello}\n",
            "pipelines/hello/main.py": (
                "import os, sys\nprint(os.environ['GREETING'], sys.argv[1])\n"
                "print('note', file=sys.stderr)\nprint(os.environ['FASTFLOW_TRIGGER'])\n"
            ),
            "pipelines/broken/pipeline.yaml": "network: none\n",
            "pipelines/broken/main.py": "raise SystemExit(4)\n",
        }
    )
    return git_repo


def test_run_streams_the_log_and_exits_zero(repo: GitRepo, tmp_path: Path) -> None:
    done = fastflow("run", "hello", "--repo", str(repo.path), data=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello world\nmanual\n"
    assert "note\n" in done.stderr
    assert ": succeeded, exit 0," in done.stderr


def test_failed_run_exits_one_with_the_exit_code(repo: GitRepo, tmp_path: Path) -> None:
    done = fastflow(
        "run", "broken", "--repo", str(repo.path), "--format", "json", data=tmp_path / "data"
    )
    assert done.returncode == 1
    assert '"state": "failed"' in done.stdout and '"exit_code": 4' in done.stdout


def test_invalid_pipeline_is_not_run(repo: GitRepo, tmp_path: Path) -> None:
    sha = repo.commit({"pipelines/hello/pipeline.yaml": "timeout: never\n"})
    done = fastflow("run", "hello", "--repo", str(repo.path), "--rev", sha, data=tmp_path / "data")
    assert done.returncode == 1
    assert "pipelines/hello/pipeline.yaml:1:10: timeout: 'never' is not a duration" in done.stderr


def test_unknown_pipeline_is_a_usage_error(repo: GitRepo, tmp_path: Path) -> None:
    done = fastflow("run", "nope", "--repo", str(repo.path), data=tmp_path / "data")
    assert done.returncode == 2
    assert "no pipeline named 'nope'" in done.stderr and "broken, hello" in done.stderr


def test_run_is_recorded_in_the_commit_note_and_shown_by_status(
    repo: GitRepo, tmp_path: Path
) -> None:
    done = fastflow("run", "broken", "--repo", str(repo.path), data=tmp_path / "data")
    assert done.returncode == 1
    status = fastflow(
        "status", "--repo", str(repo.path), "--format", "json", data=tmp_path / "data"
    )
    assert status.returncode == 1  # the combined state is failure
    document = json.loads(status.stdout)
    assert document["state"] == "failure"
    [context] = document["statuses"]
    assert context["context"] == "fastflow/run/broken" and context["state"] == "failure"
    assert context["description"].startswith("failed (exit 4, ") and context[
        "description"
    ].endswith("s)")
    [run] = document["runs"]
    assert (run["pipeline"], run["trigger"], run["state"], run["exit_code"], run["attempt"]) == (
        "broken",
        "manual",
        "failed",
        4,
        1,
    )
    assert run["uv_version"] == "0.13.9"
    text = fastflow("status", "--repo", str(repo.path), data=tmp_path / "data")
    assert "state: failure" in text.stdout and "fastflow/run/broken  failure" in text.stdout
    log = subprocess.run(
        ["git", "log", "-1", "--notes=fastflow"], cwd=repo.path, capture_output=True, text=True
    )
    assert '"type":"run"' in log.stdout


def test_no_record_leaves_no_note(repo: GitRepo, tmp_path: Path) -> None:
    assert (
        fastflow(
            "run", "hello", "--repo", str(repo.path), "--no-record", data=tmp_path / "data"
        ).returncode
        == 0
    )
    status = fastflow("status", "--repo", str(repo.path), data=tmp_path / "data")
    assert status.returncode == 0 and "(nothing recorded on this commit)" in status.stdout
