"""Post commit statuses to a forge: GitHub or Gitea/Forgejo (``POST /repos/{owner}/{repo}/statuses/{sha}``).

Optional: used only when a base URL, a repository and a token are configured. Posting never breaks
the caller: server errors, rate limits and network errors are retried with exponential backoff,
other refusals are logged once, and ``post`` returns whether the status arrived. The token is
sent in a header and appears in no log line or exception.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.model.notes import StatusLine

logger = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class ForgeKind(StrEnum):
    GITHUB = "github"
    GITEA = "gitea"


@dataclass(frozen=True)
class ForgeSettings:
    kind: ForgeKind
    base_url: str  # https://api.github.com, or https://gitea.example/api/v1
    repo: str  # owner/name
    token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ForgeSettings(kind={self.kind.value!r}, base_url={self.base_url!r}, repo={self.repo!r}, token=***)"


class StatusPoster:
    def __init__(
        self,
        settings: ForgeSettings,
        *,
        attempts: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._sleep = sleep

    def url(self, commit: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}/repos/{self.settings.repo}/statuses/{commit}"

    def post(self, commit: str, status: StatusLine) -> bool:
        body = {
            "state": status.state.value,
            "context": status.context,
            "description": status.description[:140],
        }
        if status.target_url:
            body["target_url"] = status.target_url
        for attempt in range(1, self.attempts + 1):
            code = self._send(commit, json.dumps(body).encode())
            if code is not None and 200 <= code < 300:
                return True
            if code is not None and code not in RETRY_STATUSES:
                logger.warning(
                    "forge refused status %s for %s: HTTP %s", status.context, commit[:12], code
                )
                return False
            if attempt < self.attempts:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        logger.warning(
            "forge status %s for %s not posted after %d attempts",
            status.context,
            commit[:12],
            self.attempts,
        )
        return False

    def _send(self, commit: str, data: bytes) -> int | None:
        scheme = "Bearer" if self.settings.kind is ForgeKind.GITHUB else "token"
        request = urllib.request.Request(
            self.url(commit),
            data=data,
            method="POST",
            headers={
                "Authorization": f"{scheme} {self.settings.token}",
                "Accept": "application/vnd.github+json"
                if self.settings.kind is ForgeKind.GITHUB
                else "application/json",
                "Content-Type": "application/json",
                "User-Agent": "fastflow",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310  (configured URL)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            logger.info("forge unreachable (%s)", type(exc).__name__)
            return None
