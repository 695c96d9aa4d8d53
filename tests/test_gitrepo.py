"""Loading from Git commits with pygit2 (no checkout): symlinks, revisions, the example repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.gitutil import GitRepo, Symlink

ROOT = Path(__file__).resolve().parent.parent


def test_validate_rev_reads_the_commit_not_the_files_on_disk(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    good = git_repo.commit({"pipelines/a/pipeline.yaml": "", "pipelines/a/main.py": ""})
    bad = git_repo.commit({"pipelines/a/link": Symlink("../../../etc/shadow")})
    assert main(["validate", str(git_repo.path), "--rev", good]) == 0
    assert main(["validate", str(git_repo.path), "--rev", bad]) == 1
    out = capsys.readouterr().out
    assert (
        out
        == "pipelines/a/link:1:1: symlink points outside the pipeline folder: '../../../etc/shadow'\n"
    )


def test_symlink_inside_the_folder_is_a_valid_entrypoint(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    sha = git_repo.commit(
        {
            "pipelines/a/pipeline.yaml": "entrypoint: run.py\n",
            "pipelines/a/src/job.py": "print(1)\n",
            "pipelines/a/run.py": Symlink("src/job.py"),
        }
    )
    assert main(["validate", str(git_repo.path), "--rev", sha]) == 0


def test_folders_without_pipeline_yaml_are_not_pipelines(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    sha = git_repo.commit(
        {
            "pipelines/shared/util.py": "",
            "pipelines/README.md": "",
            "pipelines/a/pipeline.yaml": "",
            "pipelines/a/main.py": "",
        }
    )
    assert main(["validate", str(git_repo.path), "--rev", sha, "--format", "json"]) == 0
    assert '"pipelines": [\n    "a"\n  ]' in capsys.readouterr().out


def test_example_repository_is_valid_from_disk_and_from_git(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = ROOT / "examples" / "repo"
    assert main(["validate", str(example)]) == 0
    copy = tmp_path / "repo"
    shutil.copytree(example, copy)
    git = ["git", "-C", str(copy), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "example"], check=True)
    assert main(["validate", str(copy), "--rev", "HEAD", "--format", "json"]) == 0
    out = capsys.readouterr().out
    for name in ("extract", "transform", "legacy-report", "notify"):
        assert f'"{name}"' in out


def test_listing_from_a_cached_tree_plus_a_diff_equals_a_full_walk(git_repo: GitRepo) -> None:
    from reconciler.adapters import gitrepo

    steps: list[dict[str, object]] = [
        {f"pipelines/p{i}/pipeline.yaml": f"description: {i}\n" for i in range(30)}
        | {"pipelines/README.md": "x"},
        {"pipelines/p3/main.py": "print(3)\n", "pipelines/new/pipeline.yaml": ""},
        {"pipelines/p7": None, "pipelines/notes.txt": "y", "pipelines/p8/sub/deep.py": "1"},
        {"pipelines/p9": None, "pipelines/p9x/pipeline.yaml": "", "pipelines/README.md": None},
        {"pipelines": None, "elsewhere/file": "z"},
        {"pipelines/back/pipeline.yaml": ""},
    ]
    repo = gitrepo.open_repo(git_repo.path)
    for files in steps:
        sha = git_repo.commit(files)  # type: ignore[arg-type]
        commit = gitrepo.resolve_commit(repo, sha)
        _, listing = gitrepo.list_pipelines(repo, commit)
        folder = commit.tree["pipelines"] if "pipelines" in commit.tree else None
        assert listing == (gitrepo.walk_listing(folder) if folder is not None else {})  # type: ignore[arg-type]
