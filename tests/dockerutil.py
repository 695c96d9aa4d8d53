"""Where the tests find Docker: always through the socket proxy, never the raw socket."""

from __future__ import annotations

import functools
import os

import docker
import docker.errors
import pytest

DOCKER_HOST = os.environ.get("FASTFLOW_DOCKER_HOST", "tcp://127.0.0.1:2375")
RUNNER_IMAGE = os.environ.get("FASTFLOW_RUNNER_IMAGE", "fastflow-runner:local")


@functools.cache
def _engine_problem() -> str | None:
    try:
        client = docker.DockerClient(base_url=DOCKER_HOST, timeout=10)
        client.ping()
        client.images.get(RUNNER_IMAGE)
        client.close()
    except docker.errors.DockerException as exc:
        return f"NO DOCKER ENGINE (or no {RUNNER_IMAGE}) behind the proxy at {DOCKER_HOST}: {exc}; run scripts/setup"
    return None


def require_engine() -> None:
    """Fail in CI (the rig must be there), skip loudly elsewhere."""
    problem = _engine_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)
