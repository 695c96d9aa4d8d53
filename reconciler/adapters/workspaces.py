"""Workspaces: a pipeline's Git tree materialized read-only at ``<data>/workspaces/<tree-id>/``.

Written atomically (into a temporary folder, then renamed), so a workspace is complete or absent;
immutable and shared by every commit where the pipeline's folder did not change. Symlinks are
recreated only when they stay inside the folder (the loader already rejects others).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath

import pygit2

from reconciler.errors import InvalidInputError

logger = logging.getLogger(__name__)
_EXEC = pygit2.enums.FileMode.BLOB_EXECUTABLE
_LINK = pygit2.enums.FileMode.LINK


def workspace_path(root: Path, tree_id: str) -> Path:
    return root / tree_id


def materialize(repo: pygit2.Repository, tree_id: str, root: Path) -> Path:
    """The workspace of ``tree_id`` under ``root``, writing it first when it does not exist."""
    target = workspace_path(root, tree_id)
    if target.is_dir():
        return target
    tree = repo.get(tree_id)
    if not isinstance(tree, pygit2.Tree):
        raise InvalidInputError(f"{tree_id} is not a tree in {repo.path!r}")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        _write_tree(tree, staging, staging)
        staging.chmod(0o755)
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if target.is_dir():  # another writer won the race: its copy is identical
            return target
        raise
    logger.debug("materialized workspace %s", tree_id)
    return target


def _write_tree(tree: pygit2.Tree, folder: Path, top: Path) -> None:
    for item in tree:
        name = item.name or ""
        if name in ("", ".", "..") or "/" in name:
            continue
        path = folder / name
        if isinstance(item, pygit2.Tree):
            path.mkdir(mode=0o755)
            _write_tree(item, path, top)
        elif isinstance(item, pygit2.Blob) and item.filemode == _LINK:
            link = item.data.decode("utf-8", "replace")
            if _inside(path.parent, link, top):
                path.symlink_to(link)
        elif isinstance(item, pygit2.Blob):
            path.write_bytes(item.data)
            path.chmod(0o755 if item.filemode == _EXEC else 0o644)


def _inside(folder: Path, link: str, top: Path) -> bool:
    if link.startswith("/"):
        return False
    resolved = PurePosixPath(os.path.normpath(folder / link))
    return resolved == PurePosixPath(top) or PurePosixPath(top) in resolved.parents


def collect_garbage(root: Path, keep: set[str], min_age_s: float = 3600.0) -> list[str]:
    """Remove workspaces not in ``keep`` and unused for ``min_age_s``; returns the removed ids."""
    removed: list[str] = []
    if not root.is_dir():
        return removed
    now = time.time()
    for entry in root.iterdir():
        stale_tmp = entry.name.startswith(".tmp-") and now - entry.stat().st_mtime > min_age_s
        unused = not entry.name.startswith(".") and entry.name not in keep
        if not (stale_tmp or (unused and now - entry.stat().st_mtime > min_age_s)):
            continue
        trash = root / f".trash-{entry.name}"
        os.rename(entry, trash)  # atomic: a run never sees a half-deleted workspace
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(entry.name)
    return removed


def touch(path: Path) -> None:
    """Mark a workspace as used now (garbage collection keeps recently used ones)."""
    os.utime(path)
