"""The status site and API (Starlette), read-only except ``POST /hooks/git`` (which only asks for a
fetch). Paths are the contract of ARCHITECTURE.md §6. Nothing here shows an env value, a secret
or a credential: runs are shown through ``ActiveRun.view`` and notes' run lines (masked logs).

``/events`` is Server-Sent Events: every client has its own bounded subscription to the bus (no
shared queue, every client gets every event); a client that falls behind is cut off and resumes
with ``Last-Event-ID`` from the bus's replay buffer, so it sees no gap and no repeat; ``?run=<id>``
streams one run (state, resource samples, log lines) and ends when that run is final; a comment
line every ``HEARTBEAT_S`` keeps proxies from closing idle streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from reconciler.model.events import RUN_FINISHED, RUN_SKIPPED, Event
from reconciler.runtime.app import App
from reconciler.runtime.views import (
    pipeline_views,
    recent_commits,
    run_detail,
    run_list,
    run_log,
    source_view,
)

logger = logging.getLogger(__name__)
MAX_HOOK_BODY = 1 << 20
HEARTBEAT_S = 15.0
SSE_QUEUE = 2000
_PACKAGED_WEB = Path(__file__).parent / "_web"
WEB_DIR = (
    _PACKAGED_WEB if _PACKAGED_WEB.is_dir() else Path(__file__).resolve().parent.parent / "web"
)


def create_site(
    app: App, *, token: str | None = None, webhook_secret: str | None = None
) -> Starlette:
    handlers = _Handlers(app, webhook_secret)
    routes = [
        Route("/", handlers.index),
        Route("/healthz", handlers.healthz),
        Route("/readyz", handlers.readyz),
        Route("/hooks/git", handlers.hook, methods=["POST"]),
        Route("/api/state", handlers.state),
        Route("/api/runs", handlers.runs),
        Route("/api/runs/{run_id}", handlers.run),
        Route("/api/runs/{run_id}/log", handlers.log),
        Route("/events", handlers.events),
        Route("/metrics", handlers.metrics),
        Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
    ]
    site = Starlette(routes=routes)
    if token:
        site.add_middleware(_BearerToken, token=token)
    return site


class _Handlers:
    def __init__(self, app: App, webhook_secret: str | None) -> None:
        self.app = app
        self.webhook_secret = webhook_secret
        self.formatted = _Formatted()  # one per site (and bus): event ids restart with the process

    async def index(self, request: Request) -> Response:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        last = self.app.reconciler.last_pass
        ready = self.app.ready and last is not None and last.fetched
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def hook(self, request: Request) -> Response:
        if not self.webhook_secret:
            return JSONResponse(
                {"error": "webhooks are disabled: no secret configured"}, status_code=403
            )
        if int(request.headers.get("content-length") or 0) > MAX_HOOK_BODY:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = await _read_limited(request, MAX_HOOK_BODY)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        if not verify_signature(self.webhook_secret, body, request.headers):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.app.request_fetch()
        return JSONResponse({"status": "fetch requested"}, status_code=202)

    async def state(self, request: Request) -> Response:
        return JSONResponse(
            {
                "source": source_view(self.app),
                "pipelines": pipeline_views(self.app),
                "commits": await asyncio.to_thread(recent_commits, self.app, 10),
                "last_event_id": self.app.bus.last_id,
            }
        )

    async def runs(self, request: Request) -> Response:
        try:
            limit = max(1, min(int(request.query_params.get("limit", "100")), 1000))
        except ValueError:
            return JSONResponse({"error": "limit must be a number"}, status_code=400)
        return JSONResponse(
            {"runs": run_list(self.app, request.query_params.get("pipeline"), limit)}
        )

    async def run(self, request: Request) -> Response:
        found = run_detail(self.app, request.path_params["run_id"])
        return (
            JSONResponse(found)
            if found
            else JSONResponse({"error": "no such run"}, status_code=404)
        )

    async def log(self, request: Request) -> Response:
        found = run_detail(self.app, request.path_params["run_id"])
        if found is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        attempt = request.query_params.get("attempt")
        number = int(attempt) if attempt and attempt.isdigit() else None
        lines = await asyncio.to_thread(run_log, self.app, found, number)
        return JSONResponse({"run_id": found["run_id"], "lines": lines})

    async def events(self, request: Request) -> Response:
        run_id = request.query_params.get("run")
        last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        after = int(last) if last and last.isdigit() else None
        if run_id is not None and after is None:
            after = 0  # a run's stream starts with what the run already printed
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            _event_stream(self.app, run_id, after, self.formatted),
            media_type="text/event-stream",
            headers=headers,
        )

    async def metrics(self, request: Request) -> Response:
        return Response(
            self.app.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )


class _Formatted:
    """Each event serialized once, however many clients receive it (bounded memo by event id)."""

    def __init__(self, size: int = 20_000) -> None:
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._size = size

    def __call__(self, event: Event) -> bytes:
        found = self._cache.get(event.id)
        if found is None:
            payload = {
                "kind": event.kind,
                "at": event.at.isoformat(),
                "run_id": event.run_id,
                **event.data,
            }
            data = json.dumps(payload, separators=(",", ":"))
            found = f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n".encode()
            self._cache[event.id] = found
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return found


BATCH = 200  # events already queued for a client go out in one write


async def _event_stream(
    app: App, run_id: str | None, after: int | None, _format: _Formatted
) -> AsyncIterator[bytes]:
    subscription = app.bus.subscribe(after_id=after, run_id=run_id, maxsize=SSE_QUEUE)
    yield b"retry: 1000\n\n"
    try:
        if run_id is not None and _already_final(app, run_id) and after == 0:
            subscription.close()  # an old run: its lines come from the replay buffer; nothing more arrives
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    event = await subscription.next()
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if event is None:
                return  # cut off for lagging (the client resumes with Last-Event-ID) or finished
            chunk = [_format(event)]
            ended = run_id is not None and event.kind in (RUN_FINISHED, RUN_SKIPPED)
            for queued in subscription.drain(BATCH) if not ended else ():
                chunk.append(_format(queued))
                if run_id is not None and queued.kind in (RUN_FINISHED, RUN_SKIPPED):
                    ended = True
                    break
            yield b"".join(chunk)
            if ended:
                return
    finally:
        subscription.close()


def _already_final(app: App, run_id: str) -> bool:
    found = run_detail(app, run_id)
    return found is not None and found["state"] not in ("queued", "running")


async def _read_limited(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def verify_signature(secret: str, body: bytes, headers: Any) -> bool:
    """GitHub ``X-Hub-Signature-256: sha256=<hex>`` or Gitea ``X-Gitea-Signature: <hex>``, HMAC-SHA256
    of the body, compared in constant time."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    github = headers.get("x-hub-signature-256")
    if github:
        return hmac.compare_digest(github.strip(), f"sha256={expected}")
    gitea = headers.get("x-gitea-signature")
    if gitea:
        return hmac.compare_digest(gitea.strip(), expected)
    return False


class _BearerToken:
    """``Authorization: Bearer <token>`` for everything but the health checks and the webhook.
    (``EventSource`` cannot send headers: the page passes ``?token=`` instead.)"""

    OPEN = ("/healthz", "/readyz", "/hooks/git")

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.query = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in self.OPEN and not self._allowed(scope):
            response = JSONResponse(
                {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Any) -> bool:
        headers = dict(scope.get("headers") or [])
        if hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
            return True
        query = scope.get("query_string", b"").decode()
        given = next((part[6:] for part in query.split("&") if part.startswith("token=")), "")
        return bool(given) and hmac.compare_digest(given, self.query)
