"""Deterministic run ids: ``(pipeline, trigger, tick or commit)`` -> id, so a tick never runs twice.

``etl-20260329T013000Z-3f2a9c1b``: readable (pipeline, the tick or a short key) plus a digest of
the full identity, at most 63 characters, safe in container names and URLs.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from reconciler.model.runs import Trigger


def make_run_id(pipeline: str, trigger: Trigger, key: str | datetime) -> str:
    """``key`` is the scheduled tick (aware datetime) or a commit id / trigger key (string)."""
    text = key.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") if isinstance(key, datetime) else key
    digest = hashlib.sha256(f"{pipeline}\0{trigger.value}\0{text}".encode()).hexdigest()[:8]
    readable = text[:12] if not isinstance(key, datetime) else text
    return f"{pipeline[:30]}-{trigger.value[0]}{readable}-{digest}".lower()
