"""The status site and API (Starlette), read-only except ``POST /hooks/git`` (which only asks for a
fetch). Paths are the contract of ARCHITECTURE.md §6. Nothing here shows an env value, a secret
or a credential: runs are shown through ``ActiveRun.view`` and notes' run lines, which hold
neither.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.runtime.app import App
from reconciler.runtime.views import pipeline_views, run_detail, run_list, source_view

logger = logging.getLogger(__name__)
MAX_HOOK_BODY = 1 << 20


def create_site(
    app: App, *, token: str | None = None, webhook_secret: str | None = None
) -> Starlette:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready = (
            app.ready and app.reconciler.last_pass is not None and app.reconciler.last_pass.fetched
        )
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def hook(request: Request) -> Response:
        if not webhook_secret:
            return JSONResponse(
                {"error": "webhooks are disabled: no secret configured"}, status_code=403
            )
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_HOOK_BODY:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = await _read_limited(request, MAX_HOOK_BODY)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        if not verify_signature(webhook_secret, body, request.headers):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        app.request_fetch()
        return JSONResponse({"status": "fetch requested"}, status_code=202)

    async def state(request: Request) -> Response:
        return JSONResponse({"source": source_view(app), "pipelines": pipeline_views(app)})

    async def runs(request: Request) -> Response:
        pipeline = request.query_params.get("pipeline")
        limit = min(int(request.query_params.get("limit", "100")), 1000)
        return JSONResponse({"runs": run_list(app, pipeline, limit)})

    async def run(request: Request) -> Response:
        found = run_detail(app, request.path_params["run_id"])
        return (
            JSONResponse(found)
            if found
            else JSONResponse({"error": "no such run"}, status_code=404)
        )

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/hooks/git", hook, methods=["POST"]),
        Route("/api/state", state),
        Route("/api/runs", runs),
        Route("/api/runs/{run_id}", run),
    ]
    site = Starlette(routes=routes)
    if token:
        site.add_middleware(_BearerToken, token=token)
    return site


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
    """``Authorization: Bearer <token>`` for everything but the health checks and the webhook."""

    OPEN = ("/healthz", "/readyz", "/hooks/git")

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in self.OPEN:
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = JSONResponse(
                    {"error": "unauthorized"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
