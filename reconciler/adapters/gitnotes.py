"""Notes on ``refs/notes/fastflow`` with pygit2: append (batched, compare-and-swap), read, sync.

Appends build the notes commit in-process (no subprocess) and move the ref only if it still points
where it did when the append started (libgit2's ``set_target`` is a compare-and-swap), retrying
with a short random backoff; several commits' lines go into one notes commit. Notes written by
git with fan-out folders (``ab/cdef...``) are read and updated where they are.

``sync`` exchanges notes with a remote: fetch its notes ref, merge (``cat_sort_uniq``) into ours,
push without force; when someone else pushed in between, fetch and merge again (backoff). A line
is never lost and nobody's lines are overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pygit2

from reconciler.adapters.gitsource import explain
from reconciler.core.notes import append_lines, merge_notes
from reconciler.errors import SourceUnavailableError

logger = logging.getLogger(__name__)
NOTES_REF = "refs/notes/fastflow"
_TREE = pygit2.enums.FileMode.TREE
_BLOB = pygit2.enums.FileMode.BLOB
DEFAULT_MAX_RUNS = 20


class NotesConflictError(SourceUnavailableError):
    """The notes ref kept moving under us; try again later."""


@dataclass(frozen=True)
class SyncResult:
    fetched: bool
    merged: bool
    pushed: bool
    attempts: int


def _signature() -> pygit2.Signature:
    return pygit2.Signature("Fast-Flow", "fastflow@localhost")


class NoteStore:
    """Notes of one repository. Thread-safe; safe against other processes through CAS."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ref: str = NOTES_REF,
        max_runs: int = DEFAULT_MAX_RUNS,
    ) -> None:
        self.repo = pygit2.Repository(os.fspath(path))
        self.ref = ref
        self.max_runs = max_runs
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------

    def _notes_commit(self) -> pygit2.Commit | None:
        try:
            return self.repo.references[self.ref].peel(pygit2.Commit)
        except KeyError:
            return None

    def read(self, commit: str) -> str:
        notes = self._notes_commit()
        if notes is None:
            return ""
        path = _find(notes.tree, commit)
        if path is None:
            return ""
        blob = notes.tree[path]
        return blob.data.decode("utf-8", "replace") if isinstance(blob, pygit2.Blob) else ""

    def notes(self) -> Iterator[tuple[str, str]]:
        """Every ``(commit id, note text)``."""
        notes = self._notes_commit()
        if notes is not None:
            yield from _walk_notes(notes.tree, "")

    # -- appending -------------------------------------------------------------------------

    def append(
        self,
        entries: Mapping[str, Sequence[str]],
        message: str = "fastflow: record",
        attempts: int = 50,
    ) -> str:
        """Append lines to the notes of several commits in one notes commit; returns its id."""
        with self._lock:
            for attempt in range(attempts):
                new = self._try_append(entries, message)
                if new is not None:
                    return new
                time.sleep(random.uniform(0.001, 0.005) * (attempt + 1))
        raise NotesConflictError(f"{self.ref} kept changing; gave up after {attempts} attempts")

    def _try_append(self, entries: Mapping[str, Sequence[str]], message: str) -> str | None:
        reference = self.repo.references.get(self.ref)
        parent = reference.peel(pygit2.Commit) if reference is not None else None
        tree = parent.tree if parent is not None else None
        updates: dict[tuple[str, ...], str] = {}
        for commit, lines in entries.items():
            path = _find(tree, commit)
            current = ""
            if tree is not None and path is not None:
                blob = tree[path]
                current = (
                    blob.data.decode("utf-8", "replace") if isinstance(blob, pygit2.Blob) else ""
                )
            text = append_lines(current, lines, self.max_runs)
            updates[tuple((path or commit).split("/"))] = text
        new_tree = _update_tree(
            self.repo, tree, {k: self.repo.create_blob(v.encode()) for k, v in updates.items()}
        )
        signature = _signature()
        parents = [parent.id] if parent is not None else []
        new_commit = self.repo.create_commit(None, signature, signature, message, new_tree, parents)
        return (
            str(new_commit)
            if _compare_and_swap(self.repo, self.ref, reference, new_commit)
            else None
        )

    # -- exchanging with a remote ------------------------------------------------------------

    def sync(self, url: str, attempts: int = 8, callbacks: Callbacks | None = None) -> SyncResult:
        """Fetch, merge and push the notes ref; retried with backoff when the remote moves.

        ``callbacks`` makes fresh credentials/host-check callbacks for each remote operation."""
        tracking = _tracking(url)
        with self._lock:
            for attempt in range(1, attempts + 1):
                remote, _ = self._fetch(url, tracking, callbacks)
                fetched = tracking in self.repo.references
                merged = self._merge_from(tracking) if fetched else False
                if self.repo.references.get(self.ref) is None:
                    return SyncResult(fetched, merged, False, attempt)
                rejected = _push(remote, f"{self.ref}:{self.ref}", _make(callbacks), url)
                if not rejected:
                    return SyncResult(fetched, merged, True, attempt)
                logger.info("notes push rejected (%s); fetching again", rejected)
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
        raise NotesConflictError(f"could not push {self.ref} after {attempts} attempts")

    def pull(self, url: str, callbacks: Callbacks | None = None) -> bool:
        """Fetch another repository's notes and merge them into ours (no push). Two local
        repositories stay in step with a ``pull`` in each direction; libgit2 cannot push into a
        non-bare repository, but it can always fetch from one."""
        tracking = _tracking(url)
        with self._lock:
            _, found = self._fetch(url, tracking, callbacks)
            return self._merge_from(tracking) if found else False

    def _fetch(
        self, url: str, tracking: str, callbacks: Callbacks | None
    ) -> tuple[pygit2.Remote, bool]:
        """Fetch the remote's notes ref into ``tracking``; ``False`` when the remote has none
        (not an error: nobody has written notes there yet)."""
        remote = self.repo.remotes.create_anonymous(url)
        fetching = _make(callbacks)
        try:
            remote.fetch([f"+{self.ref}:{tracking}"], callbacks=fetching)
        except pygit2.GitError as exc:
            text = str(exc).lower()
            if "couldn't find remote ref" in text or "not found" in text:
                return remote, False
            why = explain(exc, fetching, url)
            raise SourceUnavailableError(f"cannot fetch notes: {why}") from None
        return remote, True

    def _merge_from(self, tracking: str) -> bool:
        theirs = self.repo.references[tracking].peel(pygit2.Commit)
        for _ in range(50):
            reference = self.repo.references.get(self.ref)
            if reference is None:
                self.repo.create_reference_direct(self.ref, theirs.id, False)
                return True
            ours = reference.peel(pygit2.Commit)
            if ours.id == theirs.id or self.repo.descendant_of(ours.id, theirs.id):
                return False
            if self.repo.descendant_of(theirs.id, ours.id):
                target = theirs.id
            else:
                tree = merge_trees(self.repo, ours.tree, theirs.tree)
                signature = _signature()
                target = self.repo.create_commit(
                    None,
                    signature,
                    signature,
                    "fastflow: merge notes (cat_sort_uniq)",
                    tree,
                    [ours.id, theirs.id],
                )
            if _compare_and_swap(self.repo, self.ref, reference, target):
                return True
        raise NotesConflictError(f"{self.ref} kept changing during a merge")


def merge_trees(repo: pygit2.Repository, ours: pygit2.Tree, theirs: pygit2.Tree) -> pygit2.Oid:
    """A notes tree holding, for every commit, ``cat_sort_uniq`` of both sides' notes."""
    mine = dict(_walk_notes(ours, ""))
    other = dict(_walk_notes(theirs, ""))
    updates: dict[tuple[str, ...], pygit2.Oid] = {}
    for commit, text in other.items():
        if mine.get(commit) == text:
            continue
        merged = merge_notes(mine.get(commit, ""), text)
        path = _find(ours, commit) or commit
        updates[tuple(path.split("/"))] = repo.create_blob(merged.encode())
    return _update_tree(repo, ours, updates)


def _compare_and_swap(
    repo: pygit2.Repository, name: str, expected: pygit2.Reference | None, target: pygit2.Oid
) -> bool:
    try:
        if expected is None:
            repo.create_reference_direct(name, target, False)
        else:
            expected.set_target(target, "fastflow: notes")
    except (pygit2.AlreadyExistsError, pygit2.GitError, ValueError, OSError):
        # moved since we read it, or another writer holds the ref's lock file right now
        return False
    return True


Callbacks = Callable[[], pygit2.RemoteCallbacks]


def _tracking(url: str) -> str:
    """Where a remote's notes are fetched to before merging (one ref per remote URL)."""
    return f"refs/fastflow/remote-notes/{hashlib.sha1(url.encode()).hexdigest()[:12]}"


def _make(callbacks: Callbacks | None) -> pygit2.RemoteCallbacks | None:
    return callbacks() if callbacks is not None else None


class _PushCallbacks(pygit2.RemoteCallbacks):
    """Records per-ref rejections; credentials and the host check come from ``inner``."""

    def __init__(self, inner: pygit2.RemoteCallbacks | None) -> None:
        super().__init__()
        self.inner = inner
        self.host_rejected: str | None = None
        self.rejected: list[str] = []

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> Any:
        if self.inner is None:
            return super().credentials(url, username_from_url, allowed_types)
        return self.inner.credentials(url, username_from_url, allowed_types)

    def certificate_check(self, certificate: None, valid: bool, host: bytes | str) -> bool:
        if self.inner is None:
            return super().certificate_check(certificate, valid, host)  # type: ignore[arg-type]
        verdict = bool(self.inner.certificate_check(certificate, valid, host))  # type: ignore[arg-type]
        self.host_rejected = getattr(self.inner, "host_rejected", None)
        return verdict

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected.append(f"{refname}: {message}")


def _push(
    remote: pygit2.Remote, spec: str, callbacks: pygit2.RemoteCallbacks | None, url: str
) -> str:
    """Push without force; returns why it was rejected ('' when it went through)."""
    recorder = _PushCallbacks(callbacks)
    try:
        remote.push([spec], callbacks=recorder)
    except pygit2.GitError as exc:
        text = str(exc)
        if any(
            word in text.lower()
            for word in ("non-fast-forward", "rejected", "cannot push", "not present locally")
        ):
            return text
        raise SourceUnavailableError(f"cannot push notes: {explain(exc, recorder, url)}") from None
    return "; ".join(recorder.rejected)


# -- notes trees (with git's optional fan-out) --------------------------------------------------


def _find(tree: pygit2.Tree | None, commit: str) -> str | None:
    """Where the note of ``commit`` lives: ``<id>``, ``ab/<rest>`` or deeper fan-out."""
    if tree is None:
        return None
    prefix = ""
    node: pygit2.Tree = tree
    rest = commit
    while rest:
        if rest in node:
            return prefix + rest
        head = rest[:2]
        if head in node and isinstance(node[head], pygit2.Tree):
            sub = node[head]
            assert isinstance(sub, pygit2.Tree)
            node, prefix, rest = sub, f"{prefix}{head}/", rest[2:]
            continue
        return None
    return None


def _walk_notes(tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, str]]:
    for item in tree:
        name = item.name or ""
        if isinstance(item, pygit2.Tree):
            yield from _walk_notes(item, prefix + name)
        elif isinstance(item, pygit2.Blob):
            yield prefix + name, item.data.decode("utf-8", "replace")


def _update_tree(
    repo: pygit2.Repository, tree: pygit2.Tree | None, updates: Mapping[tuple[str, ...], pygit2.Oid]
) -> pygit2.Oid:
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    nested: dict[str, dict[tuple[str, ...], pygit2.Oid]] = {}
    for path, blob in updates.items():
        if len(path) == 1:
            builder.insert(path[0], blob, _BLOB)
        else:
            nested.setdefault(path[0], {})[path[1:]] = blob
    for name, sub_updates in nested.items():
        sub = tree[name] if tree is not None and name in tree else None
        sub_tree = sub if isinstance(sub, pygit2.Tree) else None
        builder.insert(name, _update_tree(repo, sub_tree, sub_updates), _TREE)
    return builder.write()
