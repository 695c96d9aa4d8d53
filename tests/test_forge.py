"""Commit statuses posted to a forge, against a local HTTP server that records requests."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reconciler.adapters.forge import ForgeKind, ForgeSettings, StatusPoster
from reconciler.model.notes import StatusLine, StatusState

TOKEN = "canary-forge-token-5d1e"


class Recorder(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, dict[str, str], dict[str, object]]] = []
    responses: list[int] = []

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.command, self.path, dict(self.headers), body))
        code = type(self).responses.pop(0) if type(self).responses else 201
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.requests, Recorder.responses = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


STATUS = StatusLine(
    at=datetime(2026, 11, 27, tzinfo=UTC),
    context="fastflow/run/etl",
    state=StatusState.FAILURE,
    description="failed: exit 3 in 2.0s",
    target_url="http://127.0.0.1:8080/#/runs/x",
)
SHA = "a" * 40


@pytest.mark.parametrize(
    ("kind", "scheme"), [(ForgeKind.GITHUB, "Bearer"), (ForgeKind.GITEA, "token")]
)
def test_status_is_posted_to_the_forge_path(server: str, kind: ForgeKind, scheme: str) -> None:
    poster = StatusPoster(ForgeSettings(kind, f"{server}/api/v1", "team/pipelines", TOKEN))
    assert poster.post(SHA, STATUS) is True
    [(method, path, headers, body)] = Recorder.requests
    assert (method, path) == ("POST", f"/api/v1/repos/team/pipelines/statuses/{SHA}")
    assert headers["Authorization"] == f"{scheme} {TOKEN}"
    assert body == {
        "state": "failure",
        "context": "fastflow/run/etl",
        "description": "failed: exit 3 in 2.0s",
        "target_url": "http://127.0.0.1:8080/#/runs/x",
    }


def test_server_errors_are_retried_with_backoff(server: str) -> None:
    Recorder.responses = [503, 502, 201]
    sleeps: list[float] = []
    poster = StatusPoster(
        ForgeSettings(ForgeKind.GITHUB, server, "o/r", TOKEN), backoff_s=0.5, sleep=sleeps.append
    )
    assert poster.post(SHA, STATUS) is True
    assert len(Recorder.requests) == 3 and sleeps == [0.5, 1.0]


def test_refusal_is_not_retried_and_never_raises_or_logs_the_token(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    Recorder.responses = [401]
    poster = StatusPoster(
        ForgeSettings(ForgeKind.GITHUB, server, "o/r", TOKEN), sleep=lambda s: None
    )
    with caplog.at_level(logging.DEBUG):
        assert poster.post(SHA, STATUS) is False
    assert len(Recorder.requests) == 1
    assert "HTTP 401" in caplog.text and TOKEN not in caplog.text
    assert TOKEN not in repr(poster.settings)


def test_unreachable_forge_gives_up_quietly(caplog: pytest.LogCaptureFixture) -> None:
    poster = StatusPoster(
        ForgeSettings(ForgeKind.GITEA, "http://127.0.0.1:9", "o/r", TOKEN),
        attempts=3,
        sleep=lambda s: None,
    )
    with caplog.at_level(logging.DEBUG):
        assert poster.post(SHA, STATUS) is False
    assert "not posted after 3 attempts" in caplog.text and TOKEN not in caplog.text
