"""A tiny pygit2 repository builder for tests: ``repo.commit({"path": "text"}, "msg") -> sha``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pygit2

SIGNATURE = pygit2.Signature("Fast-Flow Tests", "tests@fastflow.invalid", 1_700_000_000, 0)


@dataclass(frozen=True)
class Symlink:
    target: str


Content = str | bytes | Symlink | None  # None deletes the path


class GitRepo:
    """A non-bare repository whose commits are built from dicts, without a working tree."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        self.repo = pygit2.init_repository(os.fspath(path), initial_head=branch)
        self.files: dict[str, bytes | Symlink] = {}

    def commit(self, changes: dict[str, Content], message: str = "change") -> str:
        for path, content in changes.items():
            if content is None:
                self.files = {
                    p: c
                    for p, c in self.files.items()
                    if p != path and not p.startswith(f"{path}/")
                }
            else:
                self.files[path] = content.encode() if isinstance(content, str) else content
        tree = self._tree(self.files)
        parents = [] if self.repo.head_is_unborn else [self.repo.head.target]
        oid = self.repo.create_commit("HEAD", SIGNATURE, SIGNATURE, message, tree, parents)
        return str(oid)

    def _tree(self, files: dict[str, bytes | Symlink]) -> pygit2.Oid:
        nested: dict[str, dict[str, bytes | Symlink]] = {}
        builder = self.repo.TreeBuilder()
        for path, content in files.items():
            head, _, rest = path.partition("/")
            if rest:
                nested.setdefault(head, {})[rest] = content
            elif isinstance(content, Symlink):
                builder.insert(
                    head, self.repo.create_blob(content.target.encode()), pygit2.enums.FileMode.LINK
                )
            else:
                builder.insert(head, self.repo.create_blob(content), pygit2.enums.FileMode.BLOB)
        for name, sub in nested.items():
            builder.insert(name, self._tree(sub), pygit2.enums.FileMode.TREE)
        return builder.write()


def write_tree(root: Path, files: dict[str, Content]) -> Path:
    """Write ``files`` below ``root`` (symlinks as real symlinks); returns ``root``."""
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Symlink):
            target.symlink_to(content.target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        elif content is not None:
            target.write_text(content)
    return root
