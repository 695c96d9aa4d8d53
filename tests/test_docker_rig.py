"""The real test rig: a Docker engine behind the project's socket proxy, and the runner image.

These tests talk to Docker only through the proxy (``FASTFLOW_DOCKER_HOST``, default
``tcp://127.0.0.1:2375``), as the reconciler will. ``scripts/setup`` starts both.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from tests.dockerutil import DOCKER_HOST, RUNNER_IMAGE, require_engine

pytestmark = pytest.mark.docker

INSTANCE = f"test-{uuid.uuid4().hex[:12]}"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    require_engine()
    api = docker.DockerClient(base_url=DOCKER_HOST, timeout=30)
    yield api
    for container in api.containers.list(
        all=True, filters={"label": f"io.fastflow.instance={INSTANCE}"}
    ):
        container.remove(force=True)
    api.close()


def _labels() -> dict[str, str]:
    return {"io.fastflow.managed": "true", "io.fastflow.instance": INSTANCE}


def _readable_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def test_runner_image_runs_a_pep723_script_with_uv_through_the_proxy(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    app = _readable_dir(tmp_path / "app")
    cache = _readable_dir(tmp_path / "uv-cache", 0o1777)
    script = app / "main.py"
    script.write_text(
        "# /// script\n# requires-python = '>=3.11'\n# dependencies = []\n# ///\n"
        "import os, sys\nprint('hello from fastflow', sys.version_info[:2], os.getuid())\n"
    )
    script.chmod(0o644)
    container = client.containers.run(
        RUNNER_IMAGE,
        ["uv", "run", "--no-project", "/app/main.py"],
        detach=True,
        network_mode="none",
        user="10001:10001",
        volumes={
            str(app): {"bind": "/app", "mode": "ro"},
            str(cache): {"bind": "/uv-cache", "mode": "rw"},
        },
        tmpfs={"/tmp": "rw,size=64m"},
        labels=_labels(),
    )
    result = container.wait(timeout=120)
    out = container.logs(stdout=True, stderr=False).decode()
    err = container.logs(stdout=False, stderr=True).decode()
    container.remove()
    assert result["StatusCode"] == 0, err
    assert out == "hello from fastflow (3, 11) 10001\n"


def test_runner_image_has_uv_python_and_ca_certificates(client: docker.DockerClient) -> None:
    container = client.containers.run(
        RUNNER_IMAGE,
        [
            "sh",
            "-c",
            "uv --version && python3 --version && test -s /etc/ssl/certs/ca-certificates.crt && id -u",
        ],
        detach=True,
        network_mode="none",
        labels=_labels(),
    )
    assert container.wait(timeout=60)["StatusCode"] == 0
    lines = container.logs().decode().splitlines()
    container.remove()
    assert lines[0].startswith("uv 0.")
    assert lines[1].startswith("Python 3.11")
    assert lines[2] == "10001"


def _status(call: object) -> int:
    try:
        call()  # type: ignore[operator]
    except docker.errors.APIError as exc:
        assert exc.response is not None
        return exc.response.status_code
    return 200


def test_proxy_refuses_exec(client: docker.DockerClient) -> None:
    container = client.containers.run(
        RUNNER_IMAGE, ["sleep", "30"], detach=True, network_mode="none", labels=_labels()
    )
    try:
        assert _status(lambda: client.api.exec_create(container.id, ["true"])) == 403
    finally:
        container.remove(force=True)


def test_proxy_refuses_image_build(client: docker.DockerClient) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = b"FROM scratch\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    assert (
        _status(
            lambda: client.images.build(
                fileobj=context, custom_context=True, tag="fastflow-forbidden:x"
            )
        )
        == 403
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/volumes"),
        ("post", "/volumes/create"),
        ("get", "/networks"),
        ("post", "/swarm/init"),
        ("get", "/plugins"),
        ("get", "/system/df"),
        ("post", "/images/load"),
        ("delete", "/images/fastflow-runner:local"),
        ("get", "/containers/x/archive?path=/"),
        ("get", "/services"),
        ("post", "/services/create"),
        ("get", "/tasks"),
        ("get", "/nodes"),
        ("get", "/secrets"),
        ("get", "/configs"),
        ("post", "/auth"),
        ("post", "/commit"),
        ("get", "/v1.43/session"),
    ],
)
def test_proxy_denies_everything_off_the_allow_list(
    client: docker.DockerClient, method: str, path: str
) -> None:
    response = getattr(client.api, f"_{method}")(client.api.base_url + path)
    assert response.status_code == 403, (method, path, response.status_code)


def test_proxy_allows_what_the_reconciler_needs(client: docker.DockerClient) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"]
    assert client.info()["ID"]
    assert client.images.get(RUNNER_IMAGE).id.startswith("sha256:")
    assert isinstance(
        client.containers.list(filters={"label": f"io.fastflow.instance={INSTANCE}"}), list
    )


# what the haproxy rules let through, as tecnativa/docker-socket-proxy section names
ALLOWED_BY_OUR_PROXY = {"PING", "VERSION", "INFO", "EVENTS", "CONTAINERS", "IMAGES", "POST"}


def test_the_shipped_compose_proxy_allows_the_same_sections() -> None:
    """deploy/compose.yaml (tecnativa, not runnable here: no registry) opens exactly the sections
    the local haproxy proxy opens; the parametrized tests above show the rest answer 403."""
    compose = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
    env = compose["services"]["socket-proxy"]["environment"]
    sections = {k for k, v in env.items() if str(v) == "1" and not k.startswith("ALLOW_")}
    assert sections == ALLOWED_BY_OUR_PROXY
    assert env["ALLOW_RESTARTS"] == 0 and env["EXEC"] == 0 and env["BUILD"] == 0
