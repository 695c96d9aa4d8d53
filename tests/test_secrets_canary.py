"""A canary secret printed by a real container (plain, split across two writes, base64) is masked in
the terminal output, the note, `fastflow status`, error text, and never lands in the data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.adapters.fernet import FernetKeys, generate_key
from tests.dockerutil import DOCKER_HOST, require_engine
from tests.gitutil import GitRepo

pytestmark = pytest.mark.docker
CANARY = "canary-4a7e19c2-do-not-leak"
SCRIPT = """
import base64, os, sys, time
secret = os.environ["TOKEN"]
print("plain", secret, flush=True)
sys.stdout.write("split " + secret[:9]); sys.stdout.flush(); time.sleep(0.5)
sys.stdout.write(secret[9:] + " end\\n"); sys.stdout.flush()
print("b64", base64.b64encode(secret.encode()).decode(), flush=True)
print("stderr", secret, file=sys.stderr, flush=True)
raise RuntimeError("failed while holding " + secret)
"""


def test_canary_secret_is_masked_everywhere_and_never_written(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    require_engine()
    key = generate_key()
    token = FernetKeys([key]).encrypt(CANARY)
    sha = git_repo.commit(
        {
            "pipelines/leaky/pipeline.yaml": "network: none\n",
            "pipelines/leaky/main.py": SCRIPT,
            "pipelines/leaky/secrets.fernet.yaml": f"TOKEN: {token}\n",
        }
    )
    data = tmp_path / "data"
    env = {
        **os.environ,
        "FASTFLOW_DOCKER_HOST": DOCKER_HOST,
        "FASTFLOW_DATA": str(data),
        "FASTFLOW_FERNET_KEYS": key,
    }
    run = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "leaky", "--repo", str(git_repo.path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 1
    assert run.stdout.splitlines() == ["plain ***", "split *** end", "b64 ***"]
    assert "stderr ***" in run.stderr and "RuntimeError: failed while holding ***" in run.stderr
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "status",
            "--repo",
            str(git_repo.path),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    note = subprocess.run(
        ["git", "notes", "--ref=fastflow", "show", sha],
        cwd=git_repo.path,
        capture_output=True,
        text=True,
    )
    assert "failed while holding ***" in note.stdout
    for text in (run.stdout, run.stderr, status.stdout, status.stderr, note.stdout):
        assert CANARY not in text
        assert CANARY[:9] + CANARY[9:] not in text
    leaked = [
        p
        for p in data.rglob("*")
        if p.is_file() and not p.is_symlink() and CANARY.encode() in p.read_bytes()
    ]
    assert leaked == []
    assert any(data.rglob("*"))  # the data dir was used (workspaces, uv cache)
