"""The run log archive: lines per stream with timestamps, read back in time order, retention."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.adapters.logarchive import LogArchive
from reconciler.model.runs import LogLine, Stream

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_streams_are_kept_apart_and_read_back_in_time_order(tmp_path: Path) -> None:
    archive = LogArchive(tmp_path)
    writer = archive.writer("etl", "etl-run-1", 2)
    for seconds, stream, text in [
        (0, Stream.STDOUT, "a"),
        (1, Stream.STDERR, "b"),
        (2, Stream.STDOUT, "c"),
    ]:
        writer.write(
            LogLine(
                run_id="etl-run-1", stream=stream, at=T0 + timedelta(seconds=seconds), text=text
            )
        )
    writer.close()
    folder = tmp_path / "etl" / "etl-run-1"
    assert (
        folder / "a2.stdout.log"
    ).read_text() == "2026-01-01T00:00:00.000Z a\n2026-01-01T00:00:02.000Z c\n"
    assert (folder / "a2.stderr.log").read_text() == "2026-01-01T00:00:01.000Z b\n"
    assert [(line.stream, line.text) for line in archive.read("etl", "etl-run-1")] == [
        (Stream.STDOUT, "a"),
        (Stream.STDERR, "b"),
        (Stream.STDOUT, "c"),
    ]
    assert archive.read("etl", "nope") == []


def test_retention_keeps_the_newest_runs_per_pipeline_and_drops_old_ones(tmp_path: Path) -> None:
    archive = LogArchive(tmp_path)
    now = time.time()
    for index in range(5):
        archive.writer("p", f"run-{index}", 1).close()
        os.utime(tmp_path / "p" / f"run-{index}", (now - 100 + index, now - 100 + index))
    archive.writer("q", "old", 1).close()
    os.utime(tmp_path / "q" / "old", (now - 10 * 86400, now - 10 * 86400))
    assert archive.prune(max_runs=3, max_age_s=86400, now=now) == 3
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["run-2", "run-3", "run-4"]
    assert list((tmp_path / "q").iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", ""])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        LogArchive(tmp_path).folder("p", name)
