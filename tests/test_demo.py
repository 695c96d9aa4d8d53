"""`fastflow demo`: serves the example repository and runs its pipelines within seconds; Ctrl-C stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.dockerutil import DOCKER_HOST, require_engine
from tests.gitdaemon import free_port
from tests.servekit import wait_for

pytestmark = pytest.mark.docker


def runs(port: int) -> list[tuple[str, str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=5) as response:
            return [
                (r["pipeline"], r["trigger"], r["state"])
                for r in json.loads(response.read())["runs"]
            ]
    except OSError:
        return []


def test_demo_runs_the_examples_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    require_engine()
    port = free_port()
    env = {**os.environ, "FASTFLOW_DOCKER_HOST": DOCKER_HOST, "FASTFLOW_INSTANCE": f"demo-{port}"}
    for name in ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY", "FASTFLOW_FERNET_KEYS"):
        env.pop(name, None)  # the demo brings its own demo-only keys
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "demo",
            "--listen",
            f"127.0.0.1:{port}",
            "--data",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        wanted = {("extract", "manual", "succeeded"), ("transform", "after", "succeeded")}
        wait_for(lambda: wanted <= set(runs(port)), 90, "the example pipelines did not run")
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"Fast-Flow demo is running: http://127.0.0.1:{port}/" in output
    assert f"git clone {tmp_path / 'data' / 'demo' / 'origin.git'} fastflow-demo" in output
