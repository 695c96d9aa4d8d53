"""Watch a local repository's refs with watchfiles: a ``git push`` into it wakes the loop at once.

Only ref changes count (``refs/**``, ``packed-refs``, ``HEAD``); object writes are ignored. Each
batch of changes yields once; the debounce is short because a push touches refs last.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import watchfiles


def _is_ref(change: watchfiles.Change, path: str) -> bool:
    del change
    parts = Path(path).parts
    return "refs" in parts or parts[-1] in ("packed-refs", "HEAD")


async def watch_refs(
    git_dir: Path, stop: asyncio.Event | None = None, debounce_ms: int = 20
) -> AsyncIterator[None]:
    """Yields once per batch of ref changes under ``git_dir`` until ``stop`` (an asyncio.Event) is set."""
    async for _changes in watchfiles.awatch(
        git_dir,
        watch_filter=_is_ref,
        debounce=debounce_ms,
        step=10,
        stop_event=stop,
        recursive=True,
        ignore_permission_denied=True,
    ):
        yield None
