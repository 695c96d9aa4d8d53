"""Checks of one pipeline folder that do not depend on ``fastflow.yaml``: parsed once per tree id.

Sizes, symlinks that leave the folder, the ``pipeline.yaml`` document, the dependency layout and
the *names* of its secrets (SOPS and Fernet files keep key names in clear text; values are never
read here, only a digest of their ciphertext so a plan can say "changed").
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from reconciler.core.secretfiles import read_secret_names
from reconciler.core.sources import (
    FERNET_FILE,
    MAX_FILE_BYTES,
    MAX_YAML_BYTES,
    PARSED_FILES,
    SOPS_FILE,
    SPEC_FILE,
    FileEntry,
    PipelineSource,
)
from reconciler.core.yamlread import Mark, YamlDoc, YamlError, read_yaml
from reconciler.model.desired import Layout

FolderProblem = tuple[str, Mark, str]  # (path inside the folder, position, message)


@dataclass
class Folder:
    """The ``fastflow.yaml``-independent facts about one pipeline folder."""

    is_pipeline: bool
    doc: YamlDoc | None = None
    problems: list[FolderProblem] = field(default_factory=list)
    layout: Layout = Layout.SCRIPT
    secret_files: tuple[str, ...] = ()
    secret_digests: dict[str, str] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)

    def resolve(self, path: str) -> FileEntry | None:
        """Follow symlinks inside the folder; ``None`` if missing, dangling or escaping."""
        entry = self.files.get(path)
        for _ in range(16):
            if entry is None or entry.link_target is None:
                return entry
            target = _link_destination(entry)
            entry = self.files.get(target) if target is not None else None
        return None


def _link_destination(entry: FileEntry) -> str | None:
    target = entry.link_target or ""
    if target.startswith("/"):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), target))
    if joined == ".." or joined.startswith("../"):
        return None
    return joined


def inspect_folder(source: PipelineSource) -> Folder:
    """Everything about a folder that its tree id alone decides."""
    files = {entry.path: entry for entry in source.files}
    if SPEC_FILE not in files:
        return Folder(is_pipeline=False)
    folder = Folder(is_pipeline=True, files=files)
    for entry in source.files:
        _check_entry(folder, entry)
    if files[SPEC_FILE].link_target is None and SPEC_FILE in source.blobs:
        folder.doc = _read_doc(folder, SPEC_FILE, source.blobs[SPEC_FILE], want_mapping=True)
    folder.layout = _layout(folder)
    _read_secrets(folder, source)
    return folder


def _check_entry(folder: Folder, entry: FileEntry) -> None:
    limit = MAX_YAML_BYTES if entry.path in PARSED_FILES else MAX_FILE_BYTES
    if entry.size > limit:
        folder.problems.append(
            (entry.path, Mark(1, 1), f"file is {_mib(entry.size)}, over the {_mib(limit)} limit")
        )
    if entry.link_target is not None:
        if entry.path in PARSED_FILES:
            folder.problems.append(
                (entry.path, Mark(1, 1), "must be a regular file, not a symlink")
            )
        elif _link_destination(entry) is None:
            folder.problems.append(
                (
                    entry.path,
                    Mark(1, 1),
                    f"symlink points outside the pipeline folder: {entry.link_target!r}",
                )
            )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.0f} KiB"


def _read_doc(folder: Folder, path: str, raw: bytes, *, want_mapping: bool) -> YamlDoc | None:
    try:
        doc = read_yaml(raw)
    except YamlError as exc:
        folder.problems.append((path, exc.mark, exc.message))
        return None
    if doc.data is None:
        doc.data = {}
    if want_mapping and not isinstance(doc.data, dict):
        folder.problems.append(
            (path, Mark(1, 1), "the top level must be a mapping of keys to values")
        )
        return None
    return doc


def _layout(folder: Folder) -> Layout:
    if "pyproject.toml" in folder.files:
        if "uv.lock" not in folder.files:
            folder.problems.append(
                (
                    "pyproject.toml",
                    Mark(1, 1),
                    "uv project without uv.lock: run `uv lock` and commit uv.lock",
                )
            )
        return Layout.PROJECT
    if "requirements.txt" in folder.files:
        return Layout.REQUIREMENTS
    return Layout.SCRIPT


def _read_secrets(folder: Folder, source: PipelineSource) -> None:
    found: list[str] = []
    for path, is_sops in ((SOPS_FILE, True), (FERNET_FILE, False)):
        if path not in folder.files:
            continue
        found.append(path)
        raw = source.blobs.get(path)
        if raw is None:  # too big or a symlink: said by _check_entry
            continue
        names = read_secret_names(raw, is_sops=is_sops)
        folder.problems += [(path, mark, text) for mark, text in names.problems]
        for name, digest in names.digests.items():
            if name in folder.secret_digests:
                folder.problems.append(
                    (path, names.marks[name], f"secret {name!r} is defined in both secrets files")
                )
            else:
                folder.secret_digests[name] = digest
    folder.secret_files = tuple(found)
