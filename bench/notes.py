#!/usr/bin/env -S uv run --frozen python
"""Benchmark: the note store.

1. Append latency: one line to one commit's note (single), and 100 commits x 1 line in one notes
   commit (batched), against the baseline of plain `git notes --ref=fastflow append` for one line
   (a subprocess), measured in the same run.
2. Start-up read: the last 100 runs of each of 100 pipelines from a repository holding 100,000 run
   lines (1,000 commits x 100 pipelines), against the floor of reading every note blob unparsed.

Usage: bench/notes.py [COMMITS] [PIPELINES]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.adapters.gitnotes import NoteStore  # noqa: E402
from reconciler.core.notes import encode_line, latest_runs  # noqa: E402
from reconciler.model.notes import RunLine  # noqa: E402
from tests.gitutil import GitRepo  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def line(pipeline: int, n: int) -> str:
    return encode_line(
        RunLine(
            at=T0 + timedelta(minutes=n, seconds=pipeline),
            run_id=f"p{pipeline:03d}-{n}",
            pipeline=f"p{pipeline:03d}",
            trigger="schedule",
            state="succeeded",
            exit_code=0,
            duration_s=1.5,
            image="fastflow-runner:local",
            log_tail=["extracted 4 rates", "done"],
        )
    )


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    commits = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pipelines = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    with tempfile.TemporaryDirectory() as tmp:
        repo = GitRepo(Path(tmp) / "repo")
        start = time.perf_counter()
        shas = [repo.commit({"counter": str(i)}, f"c{i}") for i in range(commits)]
        store = NoteStore(repo.path, max_runs=1000)
        for chunk in range(0, commits, 100):
            store.append(
                {
                    sha: [line(p, i) for p in range(pipelines)]
                    for i, sha in enumerate(shas[chunk : chunk + 100], chunk)
                }
            )
        print(
            f"built {commits} commits with {commits * pipelines} run lines in {time.perf_counter() - start:.1f}s"
        )

        single, batched, git_single = [], [], []
        for i in range(30):
            t = time.perf_counter()
            store.append({shas[i]: [line(999, 100_000 + i)]})
            single.append(time.perf_counter() - t)
            t = time.perf_counter()
            store.append({sha: [line(998, 200_000 + i)] for sha in shas[100:200]})
            batched.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(
                [
                    "git",
                    "-c",
                    "user.name=b",
                    "-c",
                    "user.email=b@b",
                    "notes",
                    "--ref=fastflow",
                    "append",
                    "-m",
                    line(997, 300_000 + i),
                    shas[500 + i],
                ],
                cwd=repo.path,
                check=True,
                capture_output=True,
            )
            git_single.append(time.perf_counter() - t)
        print(f"append one line            : median {median_ms(single):7.2f} ms")
        per_commit = median_ms(batched) / 100
        print(
            f"append 100 commits batched : median {median_ms(batched):7.2f} ms ({per_commit:.3f} ms per commit)"
        )
        print(f"baseline git notes append  : median {median_ms(git_single):7.2f} ms")
        print(
            f"ratio single / git         : {statistics.median(single) / statistics.median(git_single):.2f}"
        )

        reads, floors = [], []
        for _ in range(5):
            fresh = NoteStore(repo.path)
            t = time.perf_counter()
            texts = [text for _, text in fresh.notes()]
            floors.append(time.perf_counter() - t)
            t = time.perf_counter()
            result = latest_runs((text for _, text in NoteStore(repo.path).notes()), 100)
            reads.append(time.perf_counter() - t)
        assert len(result) >= pipelines and all(
            len(runs) == 100 for name, runs in result.items() if name < "p900"
        )
        total = sum(text.count("\n") for text in texts)
        print(
            f"read last 100 runs of {pipelines} pipelines from {total} lines: median {median_ms(reads):7.1f} ms"
        )
        print(f"floor: read every note blob unparsed         : median {median_ms(floors):7.1f} ms")
        print(
            f"ratio read / floor                           : {statistics.median(reads) / statistics.median(floors):.1f}"
        )


if __name__ == "__main__":
    main()
