"""The reconciler's own image: built without a registry (scripts/build-image, on the local runner
image), started against the local engine through the proxy with a read-only root filesystem as a
non-root user; `/healthz` answers and a pushed pipeline really runs."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid
from pathlib import Path

import docker
import pytest

from tests.dockerutil import DOCKER_HOST, require_engine
from tests.gitdaemon import free_port, git_daemon, served_copy
from tests.servekit import containers, wait_for

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parent.parent
IMAGE = "fastflow:local"


def http_json(port: int, path: str) -> object:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def test_image_builds_offline_runs_read_only_and_runs_a_pipeline(
    tmp_path: Path, engine: docker.DockerClient
) -> None:
    require_engine()
    built = subprocess.run(
        ["bash", "scripts/build-image"], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert built.returncode == 0, built.stderr[-2000:]
    served = served_copy(
        tmp_path,
        {
            "pipelines/hi/pipeline.yaml": "network: none\non_push: true\n",
            "pipelines/hi/main.py": "print(1)\n",
        },
    )
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 10001, 10001)
    instance = f"img-{uuid.uuid4().hex[:8]}"
    port = free_port()
    with git_daemon(served) as base:
        container = engine.containers.run(
            IMAGE,
            detach=True,
            network_mode="host",  # it reaches the proxy and serves on 127.0.0.1; no container address is used
            read_only=True,
            tmpfs={"/tmp": "rw,size=64m"},
            volumes={str(data): {"bind": str(data), "mode": "rw"}},  # the same path inside and out
            environment={
                "FASTFLOW_REPO": f"{base}/origin.git",
                "FASTFLOW_DATA": str(data),
                "FASTFLOW_INSTANCE": instance,
                "FASTFLOW_LISTEN": f"127.0.0.1:{port}",
                "FASTFLOW_DOCKER_HOST": DOCKER_HOST,
                "FASTFLOW_INTERVAL": "1",
            },
            labels={"io.fastflow.test": instance},
        )
        try:
            wait_for(
                lambda: http_json(port, "/healthz") == {"status": "ok"},
                60,
                "no /healthz from the image",
            )
            config = engine.api.inspect_container(container.id)
            assert (
                config["HostConfig"]["ReadonlyRootfs"] is True
                and config["Config"]["User"] == "10001:10001"
            )
            work = tmp_path / "work"
            subprocess.run(
                ["git", "clone", "-q", f"{base}/origin.git", str(work)],
                check=True,
                capture_output=True,
            )
            (work / "pipelines/hi/main.py").write_text("print('hello from the reconciler image')\n")
            git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
            subprocess.run([*git, "commit", "-qam", "change"], check=True)
            subprocess.run(
                [*git, "push", "-q", "origin", "HEAD:main"], check=True, capture_output=True
            )

            def succeeded() -> bool:
                found = http_json(port, "/api/runs")
                return isinstance(found, dict) and any(
                    r["state"] == "succeeded" for r in found["runs"]
                )

            wait_for(succeeded, 90, "the image did not run the pushed pipeline")
        finally:
            logs = container.logs().decode(errors="replace")
            container.remove(force=True)
            for leftover in containers(engine, instance):
                engine.api.remove_container(leftover.id, force=True)
        assert "Traceback" not in logs, logs[-3000:]
