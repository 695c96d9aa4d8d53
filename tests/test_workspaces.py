"""Workspaces: a pipeline's tree written once per tree id, atomically, shared, and collected."""

from __future__ import annotations

import os
import time
from pathlib import Path

from reconciler.adapters import gitrepo, workspaces
from tests.gitutil import GitRepo, Symlink


def _tree(git_repo: GitRepo, sha: str, name: str) -> str:
    repo = gitrepo.open_repo(git_repo.path)
    _, listing = gitrepo.list_pipelines(repo, gitrepo.resolve_commit(repo, sha))
    return listing[name]


def test_workspace_holds_the_tree_with_modes_and_inner_symlinks(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    sha = git_repo.commit(
        {
            "pipelines/a/pipeline.yaml": "",
            "pipelines/a/main.py": "print(1)\n",
            "pipelines/a/lib/util.py": "X = 1\n",
            "pipelines/a/run.py": Symlink("lib/util.py"),
            "pipelines/a/evil": Symlink("../../../etc/passwd"),
        }
    )
    repo = gitrepo.open_repo(git_repo.path)
    path = workspaces.materialize(repo, _tree(git_repo, sha, "a"), tmp_path / "ws")
    assert (path / "main.py").read_text() == "print(1)\n"
    assert (path / "lib" / "util.py").stat().st_mode & 0o777 == 0o644
    assert (path / "lib").stat().st_mode & 0o777 == 0o755
    assert os.readlink(path / "run.py") == "lib/util.py"
    assert not (path / "evil").exists() and not (path / "evil").is_symlink()
    assert [p.name for p in (tmp_path / "ws").iterdir()] == [path.name]  # no temp folder left


def test_unchanged_pipeline_shares_its_workspace_across_commits(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    first = git_repo.commit(
        {
            "pipelines/a/pipeline.yaml": "",
            "pipelines/a/main.py": "",
            "pipelines/b/pipeline.yaml": "",
        }
    )
    second = git_repo.commit({"pipelines/b/pipeline.yaml": "description: changed\n"})
    repo = gitrepo.open_repo(git_repo.path)
    one = workspaces.materialize(repo, _tree(git_repo, first, "a"), tmp_path)
    marker = one / "main.py"
    before = marker.stat().st_ino
    two = workspaces.materialize(repo, _tree(git_repo, second, "a"), tmp_path)
    assert one == two and marker.stat().st_ino == before


def test_garbage_collection_removes_only_unused_old_workspaces(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    sha = git_repo.commit({"pipelines/a/pipeline.yaml": "", "pipelines/b/pipeline.yaml": "x: 1\n"})
    repo = gitrepo.open_repo(git_repo.path)
    a = workspaces.materialize(repo, _tree(git_repo, sha, "a"), tmp_path)
    b = workspaces.materialize(repo, _tree(git_repo, sha, "b"), tmp_path)
    old = time.time() - 7200
    os.utime(a, (old, old))
    os.utime(b, (old, old))
    stale_tmp = tmp_path / ".tmp-crashed"
    stale_tmp.mkdir()
    os.utime(stale_tmp, (old, old))
    removed = workspaces.collect_garbage(tmp_path, keep={a.name}, min_age_s=3600)
    assert sorted(removed) == sorted([b.name, ".tmp-crashed"])
    assert a.is_dir() and not b.exists() and not stale_tmp.exists()
    workspaces.touch(a)
    assert workspaces.collect_garbage(tmp_path, keep=set(), min_age_s=3600) == []
