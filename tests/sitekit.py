"""Serve the real site on 127.0.0.1 inside the test's event loop, and a small real SSE client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from reconciler.runtime.app import App
from reconciler.site import create_site


@asynccontextmanager
async def serving(app: App, token: str | None = None) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    site = create_site(app, token=token, webhook_secret="s")
    config = uvicorn.Config(site, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110  (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class SseEvent:
    id: int | None
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class SseClient:
    """A minimal, real Server-Sent Events client over a TCP socket."""

    def __init__(self, port: int, path: str, last_event_id: int | None = None) -> None:
        self.port, self.path, self.last_event_id = port, path, last_event_id
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self, receive_buffer: int | None = None) -> None:
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.connect(("127.0.0.1", self.port))
        sock.setblocking(False)
        self.reader, self.writer = await asyncio.open_connection(sock=sock)
        extra = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id is not None else ""
        request = f"GET {self.path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{extra}\r\n"
        self.writer.write(request.encode())
        await self.writer.drain()
        status = await self.reader.readline()
        assert b" 200 " in status, status
        while (await self.reader.readline()) not in (b"\r\n", b""):
            pass

    async def events(self) -> AsyncIterator[SseEvent]:
        """Events until the server ends the stream (HTTP/1.0: the body ends when the connection does)."""
        assert self.reader is not None
        current: dict[str, str] = {}
        try:
            async for event in self._parse(current):
                yield event
        finally:
            self.close()

    async def _parse(self, current: dict[str, str]) -> AsyncIterator[SseEvent]:
        assert self.reader is not None
        while True:
            raw = await self.reader.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if "data" in current:
                    event = SseEvent(
                        int(current["id"]) if "id" in current else None,
                        current.get("event", "message"),
                        json.loads(current["data"]),
                    )
                    if event.id is not None:
                        self.last_event_id = event.id
                    yield event
                current = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            current[key] = value.lstrip(" ")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
