"""`fastflow serve` as a child process, and the Docker fixtures the serve tests share."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from tests.dockerutil import DOCKER_HOST
from tests.gitdaemon import free_port

SECRET = "hook-secret-1"


class Serve:
    def __init__(self, repo: str, data: Path, instance: str) -> None:
        self.repo, self.data, self.instance = repo, data, instance
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.log = data.parent / f"serve-{instance}.log"

    def start(self, interval: float = 3600, env: dict[str, str] | None = None) -> None:
        env = {
            **os.environ,
            **(env or {}),
            "FASTFLOW_DOCKER_HOST": DOCKER_HOST,
            "FASTFLOW_WEBHOOK_SECRET": SECRET,
            "FASTFLOW_INSTANCE": self.instance,
        }
        command = [
            sys.executable,
            "-m",
            "reconciler",
            "-v",
            "serve",
            "--repo",
            self.repo,
            "--data",
            str(self.data),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--interval",
            str(interval),
        ]
        with open(self.log, "a") as handle:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, env=env, text=True
            )
        wait_for(lambda: self.get("/readyz")[0] == 200, 60, "serve did not get ready")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=5
            ) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def post_oversized(self, path: str, headers: dict[str, str], chunked_bytes: int = 0) -> int:
        """POST a body larger than the server accepts over a raw socket and return the status.

        The server answers 413 as soon as it can decide and closes the connection, so a client
        that keeps writing the rest of the body races a broken pipe. This one sends only what the
        server needs: with ``chunked_bytes == 0`` the headers declare ``Content-Length: 2 MiB``
        and no body follows; otherwise that many bytes go out as one chunk of a chunked body.
        """
        lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if chunked_bytes:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {2 << 20}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(head)
            if chunked_bytes:
                conn.sendall(f"{chunked_bytes:x}\r\n".encode() + b"x" * chunked_bytes + b"\r\n")
            status_line = conn.makefile("rb").readline().decode()
        return int(status_line.split()[1])

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)


def wait_for(predicate: Callable[[], bool], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(message)


def containers(client: docker.DockerClient, instance: str) -> list[Any]:
    # sparse: no inspect per container, so one removed meanwhile is no error
    return client.containers.list(
        all=True, sparse=True, filters={"label": f"io.fastflow.instance={instance}"}
    )


def state(container: Any) -> str:
    return str(container.attrs.get("State"))
