"""Read desired state out of a Git repository with pygit2: commits, trees and blobs, no checkout.

``list_pipelines`` reads one tree (``pipelines/``) and returns ``name -> tree id``; ``read_pipeline``
reads one folder only when the loader asks for it (a tree id it has not seen).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import pygit2

from reconciler.core.loading import ConfigSource, Loader
from reconciler.core.sources import (
    CONFIG_FILE,
    MAX_YAML_BYTES,
    PIPELINES_DIR,
    SHARED_DIR,
    FileEntry,
    PipelineSource,
    ReadFile,
    SharedFile,
    SharedSource,
    shared_kind,
    wants_blob,
)
from reconciler.errors import InvalidInputError
from reconciler.model.desired import DesiredState

_LINK_MODE = pygit2.enums.FileMode.LINK
_TREE_MODE = pygit2.enums.FileMode.TREE


@dataclass(frozen=True)
class CommitInfo:
    id: str
    short_id: str
    summary: str


def open_repo(path: str | os.PathLike[str]) -> pygit2.Repository:
    """Open the repository at or above ``path`` (bare or not)."""
    found = pygit2.discover_repository(os.fspath(path))
    if found is None:
        raise InvalidInputError(f"{os.fspath(path)!r} is not inside a Git repository")
    return pygit2.Repository(found)


def resolve_commit(repo: pygit2.Repository, rev: str) -> pygit2.Commit:
    """``HEAD``, a branch, a tag or a (short) hash -> the commit it names."""
    try:
        obj = repo.revparse_single(rev)
        commit = obj.peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
        raise InvalidInputError(f"{rev!r} does not name a commit in {repo.path!r}") from exc
    return commit


def describe_commit(commit: pygit2.Commit) -> CommitInfo:
    return CommitInfo(
        id=str(commit.id), short_id=str(commit.short_id), summary=commit.message.split("\n", 1)[0]
    )


def list_pipelines(
    repo: pygit2.Repository, commit: pygit2.Commit
) -> tuple[ConfigSource, dict[str, str]]:
    """``fastflow.yaml`` and the ``pipelines/`` folders of ``commit`` as ``name -> tree id``."""
    tree = commit.tree
    config = ConfigSource()
    if CONFIG_FILE in tree:
        entry = tree[CONFIG_FILE]
        if isinstance(entry, pygit2.Blob):
            raw = entry.data if entry.size <= MAX_YAML_BYTES else None
            config = ConfigSource(raw=raw, blob_id=str(entry.id), size=entry.size)
    folder = tree[PIPELINES_DIR] if PIPELINES_DIR in tree else None
    if not isinstance(folder, pygit2.Tree):
        return config, {}
    return config, dict(_LISTINGS.listing(repo, folder))


class _Listings:
    """``pipelines/`` listings by tree id. A new tree is listed from a cached one plus a
    tree-to-tree diff (libgit2 skips identical subtrees), so one changed pipeline costs a
    diff, not a walk over thousands of entries."""

    def __init__(self, size: int = 8) -> None:
        self._cache: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
        self._size = size

    def listing(self, repo: pygit2.Repository, folder: pygit2.Tree) -> dict[str, str]:
        key = (repo.path, str(folder.id))
        found = self._cache.get(key)
        if found is None:
            found = self._from_previous(repo, folder) or walk_listing(folder)
            self._cache[key] = found
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return found

    def _from_previous(self, repo: pygit2.Repository, folder: pygit2.Tree) -> dict[str, str] | None:
        previous = next(
            ((k, v) for k, v in reversed(self._cache.items()) if k[0] == repo.path), None
        )
        if previous is None:
            return None
        old = repo.get(previous[0][1])
        if not isinstance(old, pygit2.Tree):
            return None
        listing = dict(previous[1])
        changed = {
            (delta.new_file.path or delta.old_file.path).split("/", 1)[0]
            for delta in old.diff_to_tree(folder).deltas
        }
        for name in changed:
            listing.pop(name, None)
            if name in folder:
                item = folder[name]
                if item.filemode == _TREE_MODE:
                    listing[name] = str(item.id)
        return listing


def walk_listing(folder: pygit2.Tree) -> dict[str, str]:
    return {
        item.name: str(item.id)
        for item in folder
        if item.filemode == _TREE_MODE and item.name is not None
    }


_LISTINGS = _Listings()


def read_pipeline(repo: pygit2.Repository, name: str, tree_id: str) -> PipelineSource:
    """Every file of one pipeline folder (sizes, symlink targets) and the bytes the loader parses."""
    tree = repo.get(tree_id)
    if not isinstance(tree, pygit2.Tree):
        raise InvalidInputError(f"{tree_id} is not a tree")
    files: list[FileEntry] = []
    blobs: dict[str, bytes] = {}
    for path, blob, is_link in _walk(repo, tree, ""):
        if is_link:
            files.append(
                FileEntry(path, blob.size, link_target=blob.data.decode("utf-8", "replace"))
            )
            continue
        files.append(FileEntry(path, blob.size))
        if wants_blob(path, blob.size):
            blobs[path] = blob.data
    return PipelineSource(name=name, tree_id=tree_id, files=tuple(files), blobs=blobs)


def _walk(
    repo: pygit2.Repository, tree: pygit2.Tree, prefix: str
) -> Iterator[tuple[str, pygit2.Blob, bool]]:
    for item in tree:
        path = f"{prefix}{item.name}"
        if isinstance(item, pygit2.Tree):
            yield from _walk(repo, item, f"{path}/")
        elif isinstance(item, pygit2.Blob):
            yield path, item, item.filemode == _LINK_MODE


def load_commit(
    repo: pygit2.Repository, commit: pygit2.Commit, loader: Loader | None = None
) -> DesiredState:
    """The desired state of ``commit``; pass the same ``loader`` to reuse unchanged folders."""
    config, listing = list_pipelines(repo, commit)
    loader = loader or Loader()
    return loader.load(
        listing,
        lambda name, tree_id: read_pipeline(repo, name, tree_id),
        config,
        shared=shared_secrets(commit),
        commit=str(commit.id),
    )


def shared_secrets(commit: pygit2.Commit) -> SharedSource:
    """The ``secrets/`` folder of ``commit`` (files directly inside it)."""
    folder = commit.tree[SHARED_DIR] if SHARED_DIR in commit.tree else None
    if not isinstance(folder, pygit2.Tree):
        return SharedSource()
    files = []
    for item in folder:
        if not isinstance(item, pygit2.Blob):
            continue
        path, is_link = f"{SHARED_DIR}/{item.name}", item.filemode == _LINK_MODE
        wanted = shared_kind(item.name or "") and not is_link and item.size <= MAX_YAML_BYTES
        files.append(SharedFile(path, item.size, item.data if wanted else None, is_link))
    return SharedSource(str(folder.id), tuple(files))


def commit_reader(repo: pygit2.Repository, commit: str | None) -> ReadFile:
    """``read(path)``: the bytes of a repo-relative file at ``commit``, ``None`` when absent."""
    item = repo.get(commit) if commit else None
    tree = item.peel(pygit2.Tree) if isinstance(item, pygit2.Commit) else None

    def read(path: str) -> bytes | None:
        if tree is None:
            return None
        try:
            blob = tree[path]
        except KeyError:
            return None
        return blob.data if isinstance(blob, pygit2.Blob) else None

    return read
