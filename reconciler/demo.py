"""``fastflow demo``: the example repository, served and running, in one command.

Creates a bare repository from ``examples/repo`` under the data dir, starts the reconciler and the
status site on it (with the demo-only keys from ``examples/keys`` unless keys are configured),
pushes a commit whose ``Fastflow-Run:`` trailer runs the example pipelines at once, and prints the
URL and how to clone, change and push. Ctrl-C stops it; runs in flight are left to finish.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pygit2

from reconciler.errors import InvalidInputError
from reconciler.executors.docker import DockerExecutor
from reconciler.runtime.app import App, ServeOptions
from reconciler.serving import Listen, docker_executor, serve
from reconciler.settings import Settings

logger = logging.getLogger(__name__)
_PACKAGED = Path(__file__).parent / "_examples"
EXAMPLES = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent / "examples"
SIGNATURE = pygit2.Signature("Fast-Flow demo", "demo@fastflow.invalid")
PROXY_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy" / "haproxy.cfg"


def prepare_keys() -> None:
    """Use the demo-only keys when no keys are configured (never for real secrets)."""
    keys = EXAMPLES / "keys"
    if not os.environ.get("SOPS_AGE_KEY_FILE") and not os.environ.get("SOPS_AGE_KEY"):
        os.environ["SOPS_AGE_KEY_FILE"] = str(keys / "demo.agekey")
    if not os.environ.get("FASTFLOW_FERNET_KEYS"):
        os.environ["FASTFLOW_FERNET_KEYS"] = (keys / "demo.fernet").read_text().strip()


def ensure_proxy(docker_host: str) -> None:
    """Start the project's haproxy socket proxy when it is down but the engine's socket is there."""
    client = DockerExecutor.ping(docker_host)
    if client is None:
        return
    if not docker_host.startswith("tcp://127.0.0.1:") or not Path("/var/run/docker.sock").exists():
        raise InvalidInputError(
            f"no Docker API at {docker_host}: {client}; run `bash scripts/setup` first"
        )
    haproxy = shutil.which("haproxy")
    if haproxy is None or not PROXY_CONFIG.is_file():
        raise InvalidInputError(
            f"no Docker API at {docker_host} and no haproxy to start; run `bash scripts/setup`"
        )
    env = {
        **os.environ,
        "FASTFLOW_PROXY_BIND": docker_host.removeprefix("tcp://"),
        "FASTFLOW_DOCKER_SOCK": "/var/run/docker.sock",
    }
    subprocess.run(
        [haproxy, "-D", "-f", str(PROXY_CONFIG)], env=env, check=True, capture_output=True
    )
    if DockerExecutor.ping(docker_host) is not None:
        raise InvalidInputError(
            f"started haproxy, but {docker_host} still does not answer; run `bash scripts/setup`"
        )


def create_origin(path: Path) -> str:
    """A bare repository holding ``examples/repo`` as its first commit; returns that commit."""
    if path.exists():
        shutil.rmtree(path)
    repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
    tree = _tree(repo, EXAMPLES / "repo")
    commit = repo.create_commit(
        "refs/heads/main", SIGNATURE, SIGNATURE, "demo: the example pipelines", tree, []
    )
    return str(commit)


def _tree(repo: pygit2.Repository, folder: Path) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    for entry in sorted(folder.iterdir()):
        if entry.name in (".venv", "__pycache__"):
            continue
        if entry.is_symlink():
            builder.insert(
                entry.name,
                repo.create_blob(os.readlink(entry).encode()),
                pygit2.enums.FileMode.LINK,
            )
        elif entry.is_dir():
            builder.insert(entry.name, _tree(repo, entry), pygit2.enums.FileMode.TREE)
        else:
            mode = (
                pygit2.enums.FileMode.BLOB_EXECUTABLE
                if os.access(entry, os.X_OK)
                else pygit2.enums.FileMode.BLOB
            )
            builder.insert(entry.name, repo.create_blob(entry.read_bytes()), mode)
    return builder.write()


def push_run_all(path: Path) -> str:
    """A commit on main that changes nothing but asks every example pipeline to run."""
    repo = pygit2.Repository(str(path))
    head = repo.references["refs/heads/main"].peel(pygit2.Commit)
    message = "demo: run everything once\n\nFastflow-Run: extract, legacy-report\n"
    return str(
        repo.create_commit(
            "refs/heads/main", SIGNATURE, SIGNATURE, message, head.tree.id, [head.id]
        )
    )


async def run_demo(settings: Settings, listen: Listen) -> None:
    ensure_proxy(settings.docker_host)
    problem = DockerExecutor.missing_image(settings.docker_host, settings.runner_image)
    if problem:
        raise InvalidInputError(problem)
    prepare_keys()
    origin = settings.data_dir / "demo" / "origin.git"
    create_origin(origin)
    executor = docker_executor(settings)
    options = ServeOptions(source=str(origin), interval_s=60)

    async def announce(app: App) -> None:  # called once the first pass is done
        push_run_all(origin)
        app.request_fetch()
        url = f"http://{listen.host}:{listen.port}/"
        print(f"\nFast-Flow demo is running: {url}\n", flush=True)
        print("Try a change (in another terminal):", flush=True)
        print(f"  git clone {origin} fastflow-demo && cd fastflow-demo", flush=True)
        print(
            "  $EDITOR pipelines/extract/main.py && git commit -am 'my change' && git push",
            flush=True,
        )
        print("Ctrl-C stops the demo (runs in flight finish on their own).\n", flush=True)

    try:
        await serve(options, settings, executor, listen, on_started=announce)
    finally:
        executor.close()
