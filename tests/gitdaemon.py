"""A real `git daemon` on 127.0.0.1 serving bare repositories (push enabled), for remote tests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[Any], name: str, log: Path | None = None
) -> None:
    """Until something accepts connections on 127.0.0.1:``port``; fails when ``process`` exits
    first (with its ``log``) or after 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text() if log else process.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start")


@contextmanager
def git_daemon(root: Path, port: int | None = None) -> Iterator[str]:
    """Serve every repository under ``root``; yields the base URL ``git://127.0.0.1:<port>``
    (``port`` again to bring a stopped server back at the same address)."""
    port = port or free_port()
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={root}",
            "--export-all",
            "--enable=receive-pack",
            "--informative-errors",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process, "git daemon")
        yield f"git://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def served_copy(tmp: Path, files: dict[str, str]) -> Path:
    """A bare ``origin.git`` holding ``files`` as one commit, under ``tmp/served`` (the folder a
    ``git_daemon`` serves); returns that folder."""
    from tests.gitutil import GitRepo

    seed = GitRepo(tmp / "seed")
    seed.commit(dict(files))
    served = tmp / "served"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(seed.path), str(served / "origin.git")], check=True
    )
    return served
