from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from tests.dockerutil import DOCKER_HOST, require_engine
from tests.gitutil import GitRepo
from tests.servekit import Serve, containers


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    require_engine()
    client = docker.DockerClient(base_url=DOCKER_HOST, timeout=30)
    yield client
    client.close()


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
