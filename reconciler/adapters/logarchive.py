"""The run log archive: ``<data>/logs/<pipeline>/<run-id>/a<attempt>.<stdout|stderr>.log``.

One line per log line, ``<ISO timestamp> <text>``, stdout and stderr in separate files, written
as lines arrive (already masked by the runtime). Retention by count per pipeline and by age.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from reconciler.core.notes import format_at
from reconciler.model.runs import LogLine, Stream

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _safe(name: str) -> str:
    if not name or not set(name.lower()) <= _SAFE or name.startswith("."):
        raise ValueError(f"unsafe path component {name!r}")
    return name


@dataclass(frozen=True)
class ArchivedLine:
    at: str
    stream: Stream
    text: str


class LogWriter:
    def __init__(self, folder: Path, attempt: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._files: dict[Stream, IO[str]] = {
            stream: open(folder / f"a{attempt}.{stream.value}.log", "w", encoding="utf-8")  # noqa: SIM115
            for stream in Stream
        }

    def write(self, line: LogLine) -> None:
        handle = self._files[line.stream]
        handle.write(f"{format_at(line.at)} {line.text}\n")
        handle.flush()

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


class LogArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, pipeline: str, run_id: str) -> Path:
        return self.root / _safe(pipeline) / _safe(run_id)

    def writer(self, pipeline: str, run_id: str, attempt: int) -> LogWriter:
        return LogWriter(self.folder(pipeline, run_id), attempt)

    def read(self, pipeline: str, run_id: str, attempt: int | None = None) -> list[ArchivedLine]:
        """Lines of one attempt (default: the newest), both streams, in time order."""
        folder = self.folder(pipeline, run_id)
        if not folder.is_dir():
            return []
        if attempt is None:
            attempts = [int(p.name[1:].split(".")[0]) for p in folder.glob("a*.stdout.log")]
            attempt = max(attempts, default=1)
        lines: list[ArchivedLine] = []
        for stream in Stream:
            path = folder / f"a{attempt}.{stream.value}.log"
            if path.is_file():
                for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    at, _, text = raw.partition(" ")
                    lines.append(ArchivedLine(at, stream, text))
        return sorted(lines, key=lambda line: line.at)

    def prune(self, max_runs: int, max_age_s: float, now: float | None = None) -> int:
        """Remove run folders beyond ``max_runs`` per pipeline (oldest first) or older than
        ``max_age_s``; returns how many were removed."""
        now = time.time() if now is None else now
        removed = 0
        if not self.root.is_dir():
            return 0
        for pipeline in self.root.iterdir():
            runs = sorted(
                (p for p in pipeline.iterdir() if p.is_dir()),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            )
            for index, run in enumerate(runs):
                if index >= max_runs or now - run.stat().st_mtime > max_age_s:
                    shutil.rmtree(run, ignore_errors=True)
                    removed += 1
        return removed
