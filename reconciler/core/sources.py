"""What the loader reads: a pure description of a pipeline folder, produced by an adapter.

Adapters (``adapters.gitrepo`` for a commit, ``adapters.fstree`` for a directory) list the
``pipelines/`` folder as ``name -> tree id`` and, only for tree ids the loader has not seen, read
the folder into a ``PipelineSource``: every file's path, size and symlink target, plus the bytes
of the few small files the loader parses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

PIPELINES_DIR = "pipelines"
SHARED_DIR = "secrets"  # repo-level shared secrets: secrets/<group>.sops.yaml | .fernet.yaml
CONFIG_FILE = "fastflow.yaml"
SPEC_FILE = "pipeline.yaml"
SOPS_FILE = "secrets.sops.yaml"
FERNET_FILE = "secrets.fernet.yaml"
PARSED_FILES = frozenset({SPEC_FILE, SOPS_FILE, FERNET_FILE})
MAX_YAML_BYTES = 256 * 1024
MAX_FILE_BYTES = 50 * 2**20


@dataclass(frozen=True)
class FileEntry:
    """One file in a pipeline folder; ``path`` is relative to the folder, with ``/``."""

    path: str
    size: int
    link_target: str | None = None  # set for symlinks: the link text, unresolved


@dataclass(frozen=True)
class PipelineSource:
    name: str
    tree_id: str
    files: tuple[FileEntry, ...]
    blobs: Mapping[str, bytes] = field(default_factory=dict)  # only PARSED_FILES within limits


@dataclass(frozen=True)
class SharedFile:
    """A file directly inside ``secrets/``; ``raw`` only for secret files within the size limit."""

    path: str  # repo-relative, e.g. "secrets/warehouse.sops.yaml"
    size: int
    raw: bytes | None = None
    is_link: bool = False


@dataclass(frozen=True)
class SharedSource:
    """The ``secrets/`` folder of a commit; ``tree_id`` is "" when there is none."""

    tree_id: str = ""
    files: tuple[SharedFile, ...] = ()


def shared_kind(filename: str) -> tuple[str, bool] | None:
    """``<group>.sops.yaml`` -> (group, True), ``<group>.fernet.yaml`` -> (group, False)."""
    for suffix, is_sops in ((".sops.yaml", True), (".fernet.yaml", False)):
        if filename.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)], is_sops
    return None


ReadFile = Callable[[str], bytes | None]
"""``read(path)``: a repo-relative file's bytes at the commit (or directory) being loaded, or
``None`` when it is absent; how secret files reach ``runtime.unlocking``."""

ReadPipeline = Callable[[str, str], PipelineSource]
"""``read(name, tree_id)``: the adapter's way to read one folder, called only on a cache miss."""


def wants_blob(path: str, size: int) -> bool:
    """Whether an adapter should hand over a file's bytes to the loader."""
    return path in PARSED_FILES and size <= MAX_YAML_BYTES
