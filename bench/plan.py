#!/usr/bin/env -S uv run --frozen python
"""Benchmark: `fastflow plan` over a repository with N pipelines where one changed.

Builds a Git repository with N pipelines (default 5,000) in a temp dir, then measures, in-process:
  full load   : loading every pipeline of the base commit with a cold Loader (parse everything)
  plan        : loading the head commit with the same Loader (one folder changed) + make_plan
  list only   : the baseline floor, walking the `pipelines/` tree of head with pygit2 (uncached)
and prints medians, the plan/full-load ratio and the plan/list ratio.
Targets (issue 2): full load < 5 s, plan < 50 ms.   Usage: bench/plan.py [N] [REPEATS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.adapters import gitrepo  # noqa: E402
from reconciler.core.loading import Loader  # noqa: E402
from reconciler.core.planning import make_plan  # noqa: E402
from tests.gitutil import GitRepo  # noqa: E402

SPEC = """description: pipeline {i}
schedules:
  - cron: "{m} {h} * * *"
    timezone: Europe/Berlin
  - every: 15m
retries: {{max: 2, delay: 30s}}
resources: {{memory: 512Mi, cpus: 0.5}}
env: {{STAGE: prod, INDEX: "{i}"}}
"""


def build(path: Path, count: int) -> tuple[GitRepo, str, str]:
    repo = GitRepo(path)
    files: dict[str, str | bytes | None] = {"fastflow.yaml": "defaults:\n  timeout: 30m\n"}
    for i in range(count):
        files[f"pipelines/p{i:05d}/pipeline.yaml"] = SPEC.format(i=i, m=i % 60, h=i % 24)
        files[f"pipelines/p{i:05d}/main.py"] = f"print({i})\n"
    base = repo.commit(files, "base")
    head = repo.commit(
        {"pipelines/p00042/pipeline.yaml": SPEC.format(i=42, m=7, h=5)}, "change p00042"
    )
    return repo, base, head


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        git, base_sha, head_sha = build(Path(tmp) / "repo", count)
        print(f"built a repository with {count} pipelines in {time.perf_counter() - t0:.1f}s")
        repo = gitrepo.open_repo(git.path)
        base, head = gitrepo.resolve_commit(repo, base_sha), gitrepo.resolve_commit(repo, head_sha)
        full, plan, listing = [], [], []
        for _ in range(repeats):
            loader = Loader()
            state: list[object] = []
            full.append(timed(lambda: state.append(gitrepo.load_commit(repo, base, loader))))  # noqa: B023
            now = datetime.now(UTC)
            result: list[object] = []

            def incremental() -> None:
                head_state = gitrepo.load_commit(repo, head, loader)  # noqa: B023
                result.append(make_plan(state[0], head_state, now))  # type: ignore[arg-type]  # noqa: B023

            plan.append(timed(incremental))
            pipelines_tree = head.tree["pipelines"]
            listing.append(timed(lambda: gitrepo.walk_listing(pipelines_tree)))  # noqa: B023
        changes = result[0].changes  # type: ignore[attr-defined]
        assert [c.name for c in changes] == ["p00042"], changes
    f, p, li = (statistics.median(x) for x in (full, plan, listing))
    print(f"full load of {count} pipelines : median {f * 1000:8.1f} ms  (target < 5000 ms)")
    print(f"plan, one pipeline changed   : median {p * 1000:8.1f} ms  (target < 50 ms)")
    print(f"baseline: list pipelines/    : median {li * 1000:8.1f} ms")
    print(f"ratio plan / full load       : {p / f:.4f}")
    print(f"ratio plan / listing baseline: {p / li:.1f}x")


if __name__ == "__main__":
    main()
