"""``fastflow serve``: the reconciler, the status site and signal handling in one event loop.

The site starts first (``/healthz`` answers during start-up, ``/readyz`` once the first pass
fetched). SIGTERM and SIGINT stop the loop gracefully: supervision ends, containers keep running,
notes are pushed once more, the site closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn

from reconciler.errors import InvalidInputError
from reconciler.executors.base import Executor
from reconciler.executors.docker import DockerExecutor, DockerSettings
from reconciler.runtime.app import App, ServeOptions
from reconciler.settings import Settings
from reconciler.site import create_site

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8080

    @classmethod
    def parse(cls, text: str) -> Listen:
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{text!r} is not HOST:PORT")
        return cls(host.strip("[]"), int(port))


def docker_executor(settings: Settings, instance: str | None = None) -> DockerExecutor:
    """The Docker executor for these settings (the data dir is created if needed)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return DockerExecutor(
        DockerSettings(
            instance=instance or settings.instance,
            data_dir=settings.data_dir,
            base_url=settings.docker_host,
            ca_bundle=settings.ca_bundle,
            allow_direct_socket=settings.allow_direct_socket,
        )
    )


def bind(listen: Listen) -> socket.socket:
    """Bind the site's socket before anything starts, so a busy port is a clear error."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        raise InvalidInputError(
            f"cannot listen on {listen.host}:{listen.port}: {exc.strerror}"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the reconciler owns the signals


async def serve(
    options: ServeOptions,
    settings: Settings,
    executor: Executor,
    listen: Listen,
    *,
    token: str | None = None,
    stop: asyncio.Event | None = None,
    on_started: Callable[[App], Coroutine[Any, Any, None]] | None = None,
) -> App:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    app = App(options, settings, executor)
    site = create_site(app, token=token, webhook_secret=options.webhook_secret)
    config = uvicorn.Config(
        site,
        host=listen.host,
        port=listen.port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    server = _Server(config)
    sock = bind(listen)
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    extra: list[asyncio.Task[None]] = []
    try:
        await app.start()
        if on_started is not None:
            extra.append(asyncio.create_task(on_started(app)))
        logger.info(
            "serving %s (branch %s) on http://%s:%d",
            app.source.display,
            options.branch,
            listen.host,
            listen.port,
        )
        await app.run(stop)
    finally:
        logger.info("shutting down: runs keep going and are adopted at the next start")
        for task in extra:
            task.cancel()
        await app.shutdown()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await server_task
    return app
