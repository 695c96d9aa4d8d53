"""`fastflow plan` between two commits: changes field by field, schedules with DST-correct fire times."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from reconciler.adapters import gitrepo
from reconciler.cli import main
from reconciler.core.loading import Loader
from reconciler.core.planning import make_plan
from tests.gitutil import GitRepo

FERNET_A = "gAAAAABmAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
FERNET_B = "gAAAAABmBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB="


def plan_json(
    repo: GitRepo, base: str, head: str, capsys: pytest.CaptureFixture[str], at: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["plan", base, head, "--repo", str(repo.path), "--format", "json", "--at", at])
    return code, json.loads(capsys.readouterr().out)


def test_dst_crossing_schedule_change_lists_hand_computed_fire_times(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    base = git_repo.commit(
        {
            "pipelines/etl/pipeline.yaml": "schedules:\n  - cron: '0 1 * * *'\n    timezone: Europe/Berlin\n",
            "pipelines/etl/main.py": "",
        }
    )
    head = git_repo.commit(
        {
            "pipelines/etl/pipeline.yaml": "schedules:\n  - cron: '30 2 * * *'\n    timezone: Europe/Berlin\n",
        }
    )
    code, plan = plan_json(git_repo, base, head, capsys, "2026-03-26T12:00Z")
    assert code == 0
    [change] = plan["changes"]
    assert change["name"] == "etl" and change["kind"] == "changed"
    [schedule] = change["schedules"]
    # Berlin switches to CEST on Sunday 2026-03-29 at 02:00 -> 03:00
    assert schedule["before"]["next_ticks_local"] == [
        "2026-03-27 01:00 CET (+01:00)",
        "2026-03-28 01:00 CET (+01:00)",
        "2026-03-29 01:00 CET (+01:00)",
        "2026-03-30 01:00 CEST (+02:00)",
        "2026-03-31 01:00 CEST (+02:00)",
    ]
    assert schedule["after"]["next_ticks_local"] == [
        "2026-03-27 02:30 CET (+01:00)",
        "2026-03-28 02:30 CET (+01:00)",
        "2026-03-29 03:30 CEST (+02:00)",  # 02:30 does not exist that day
        "2026-03-30 02:30 CEST (+02:00)",
        "2026-03-31 02:30 CEST (+02:00)",
    ]
    assert schedule["after"]["next_ticks"][2] == "2026-03-29T01:30:00Z"
    assert change["runs_per_day_before"] == change["runs_per_day_after"] == 1.0


def test_plan_text_reports_fields_secrets_and_runs_per_day(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    base = git_repo.commit(
        {
            "pipelines/a/pipeline.yaml": "timeout: 1h\nschedules: [{every: 1h}]\n",
            "pipelines/a/main.py": "",
            "pipelines/a/secrets.fernet.yaml": f"OLD: {FERNET_A}\nKEEP: {FERNET_A}\n",
            "pipelines/gone/pipeline.yaml": "",
            "pipelines/gone/main.py": "",
            "pipelines/same/pipeline.yaml": "",
            "pipelines/same/main.py": "",
        }
    )
    head = git_repo.commit(
        {
            "pipelines/a/pipeline.yaml": "timeout: 2h\nschedules: [{every: 30m}]\nresources: {memory: 2Gi}\n",
            "pipelines/a/secrets.fernet.yaml": f"NEW: {FERNET_A}\nKEEP: {FERNET_B}\n",
            "pipelines/gone": None,
            "pipelines/new/pipeline.yaml": "schedules: [{cron: '0 3 * * *'}]\n",
            "pipelines/new/main.py": "",
        }
    )
    code = main(["plan", base, head, "--repo", str(git_repo.path), "--at", "2026-06-01T00:00Z"])
    out = capsys.readouterr().out
    assert code == 0
    assert (
        out.splitlines()[0]
        == f"Plan {base[:12]} -> {head[:12]}: 1 added, 1 removed, 1 changed, 1 unchanged"
    )
    assert "~ a (changed)" in out
    assert '    timeout: "1h" -> "2h"' in out
    assert '    resources.memory: "1Gi" -> "2Gi"' in out
    assert "    runs per day: 24 -> 48" in out
    assert "    secrets added: NEW" in out
    assert "    secrets removed: OLD" in out
    assert "    secrets changed: KEEP" in out
    assert "+ new (added)" in out and "- gone (removed)" in out
    assert FERNET_A not in out and FERNET_B not in out


def test_plan_of_invalid_head_shows_problems_and_exits_one(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    base = git_repo.commit({"pipelines/a/pipeline.yaml": "", "pipelines/a/main.py": ""})
    head = git_repo.commit({"pipelines/a/pipeline.yaml": "timeout: never\n"})
    code = main(["plan", base, head, "--repo", str(git_repo.path), "--format", "markdown"])
    out = capsys.readouterr().out
    assert code == 1
    assert "**1 validation problem(s)**" in out
    assert "pipelines/a/pipeline.yaml:1:10: timeout: 'never' is not a duration" in out
    assert "| ! | `a` | invalid |" in out


def test_unknown_revision_is_a_usage_error(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.commit({"pipelines/a/pipeline.yaml": "", "pipelines/a/main.py": ""})
    assert main(["plan", "nope", "--repo", str(git_repo.path)]) == 2
    assert "'nope' does not name a commit" in capsys.readouterr().err


def test_replanning_an_applied_state_is_empty(git_repo: GitRepo) -> None:
    sha = git_repo.commit(
        {"pipelines/a/pipeline.yaml": "schedules: [{every: 5m}]\n", "pipelines/a/main.py": ""}
    )
    repo = gitrepo.open_repo(git_repo.path)
    state = gitrepo.load_commit(repo, gitrepo.resolve_commit(repo, sha))
    plan = make_plan(state, state, datetime(2026, 1, 1, tzinfo=UTC))
    assert plan.empty and plan.unchanged == 1


def test_loading_the_next_commit_reads_only_changed_folders(git_repo: GitRepo) -> None:
    files = {f"pipelines/p{i}/pipeline.yaml": f"description: p{i}\n" for i in range(20)}
    files |= {f"pipelines/p{i}/main.py": "" for i in range(20)}
    base = git_repo.commit(files)
    head = git_repo.commit({"pipelines/p7/pipeline.yaml": "description: changed\n"})
    repo = gitrepo.open_repo(git_repo.path)
    reads: list[str] = []

    def read(commit: str) -> object:
        config, listing = gitrepo.list_pipelines(repo, gitrepo.resolve_commit(repo, commit))

        def reader(name: str, tree_id: str) -> gitrepo.PipelineSource:
            reads.append(name)
            return gitrepo.read_pipeline(repo, name, tree_id)

        return loader.load(listing, reader, config, commit=commit)

    loader = Loader()
    read(base)
    assert len(reads) == 20
    reads.clear()
    state = read(head)
    assert reads == ["p7"]
    assert state.pipelines["p7"].spec.description == "changed"  # type: ignore[attr-defined]
