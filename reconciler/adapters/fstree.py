"""Read desired state from a plain directory (a working tree, or any folder): ``fastflow validate DIR``.

A folder's "tree id" here is a SHA-256 over its file names, modes and contents, so two loads of an
unchanged folder agree; it is not a Git OID (use ``--rev`` for that).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from reconciler.core.loading import ConfigSource, Loader
from reconciler.core.sources import (
    CONFIG_FILE,
    MAX_FILE_BYTES,
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


def load_directory(root: str | os.PathLike[str], loader: Loader | None = None) -> DesiredState:
    base = Path(root)
    if not base.is_dir():
        raise InvalidInputError(f"{os.fspath(root)!r} is not a directory")
    folders = {name: _scan(base / PIPELINES_DIR / name) for name in _pipeline_dirs(base)}
    listing = {name: tree_id for name, (tree_id, _) in folders.items()}
    loader = loader or Loader()

    def read(name: str, tree_id: str) -> PipelineSource:
        return PipelineSource(
            name=name, tree_id=tree_id, files=folders[name][1][0], blobs=folders[name][1][1]
        )

    return loader.load(listing, read, _config(base), shared=_shared(base))


def _pipeline_dirs(base: Path) -> list[str]:
    folder = base / PIPELINES_DIR
    if not folder.is_dir():
        return []
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False))


def _config(base: Path) -> ConfigSource:
    path = base / CONFIG_FILE
    try:
        size = path.lstat().st_size
    except FileNotFoundError:
        return ConfigSource()
    if size > MAX_YAML_BYTES or not path.is_file():
        return ConfigSource(raw=None, blob_id=f"size:{size}", size=size)
    raw = path.read_bytes()
    return ConfigSource(raw=raw, blob_id=hashlib.sha256(raw).hexdigest(), size=size)


def _shared(base: Path) -> SharedSource:
    folder = base / SHARED_DIR
    if not folder.is_dir() or folder.is_symlink():
        return SharedSource()
    digest = hashlib.sha256()
    files = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            continue
        is_link = entry.is_symlink()
        size = entry.stat(follow_symlinks=False).st_size
        wanted = shared_kind(entry.name) and not is_link and size <= MAX_YAML_BYTES
        raw = Path(entry.path).read_bytes() if wanted else None
        digest.update(f"{entry.name}\0{size}\0{int(is_link)}\0".encode() + (raw or b""))
        files.append(SharedFile(f"{SHARED_DIR}/{entry.name}", size, raw, is_link))
    return SharedSource(digest.hexdigest(), tuple(files))


def _scan(folder: Path) -> tuple[str, tuple[tuple[FileEntry, ...], dict[str, bytes]]]:
    digest = hashlib.sha256()
    files: list[FileEntry] = []
    blobs: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        # symlinked directories are not followed by os.walk; record them as links
        names = sorted(filenames + [d for d in dirnames if (here / d).is_symlink()])
        for name in names:
            full = here / name
            rel = full.relative_to(folder).as_posix()
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(full)
                files.append(FileEntry(rel, len(target), link_target=target))
                digest.update(f"L {rel}\0{target}\0".encode())
                continue
            files.append(FileEntry(rel, info.st_size))
            digest.update(f"F {rel}\0{info.st_size}\0".encode())
            if info.st_size <= MAX_FILE_BYTES:
                data = full.read_bytes()
                digest.update(data)
                if wants_blob(rel, info.st_size):
                    blobs[rel] = data
    return digest.hexdigest(), (tuple(files), blobs)


def directory_reader(root: str | os.PathLike[str]) -> ReadFile:
    """``read(path)``: a repo-relative regular file under ``root`` (never through a symlink)."""
    base = Path(root)

    def read(path: str) -> bytes | None:
        full = base / path
        parts = [base / Path(*Path(path).parts[: i + 1]) for i in range(len(Path(path).parts))]
        if any(p.is_symlink() for p in parts) or not full.is_file():
            return None
        return full.read_bytes()

    return read
