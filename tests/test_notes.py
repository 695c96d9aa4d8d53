"""Notes on refs/notes/fastflow: the line format, trimming, concurrent writers, remotes, git's merge."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.gitnotes import NOTES_REF, NoteStore, merge_trees
from reconciler.core.notes import (
    combined_state,
    current_statuses,
    encode_line,
    format_at,
    latest_runs,
    merge_notes,
    parse_lines,
    runs_of,
)
from reconciler.model.notes import RunLine, StatusLine, StatusState
from tests.gitdaemon import git_daemon
from tests.gitutil import GitRepo

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def run_line(pipeline: str, n: int, at: datetime | None = None) -> str:
    moment = at or T0 + timedelta(seconds=n)
    return encode_line(
        RunLine(
            at=moment,
            run_id=f"{pipeline}-{n}",
            pipeline=pipeline,
            trigger="schedule",
            state="succeeded",
        )
    )


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


# -- the format --------------------------------------------------------------------------------


def test_line_is_compact_json_with_at_first_and_keys_sorted() -> None:
    line = encode_line(
        StatusLine(
            at=T0,
            context="fastflow/validate",
            state=StatusState.SUCCESS,
            description="ok",
            target_url=None,
        )
    )
    assert line == (
        '{"at":"2026-11-27T12:00:00.000Z","context":"fastflow/validate","description":"ok",'
        '"state":"success","type":"status"}'
    )
    keys = list(json.loads(run_line("a", 1)))
    assert keys[0] == "at" and keys[1:] == sorted(keys[1:])


def test_format_at_is_fixed_width_utc() -> None:
    berlin = datetime(2026, 3, 29, 3, 30, 0, 123456).astimezone()
    assert format_at(datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)) == "2026-01-02T03:04:05.006Z"
    assert len(format_at(berlin)) == 24 and format_at(berlin).endswith("Z")


def test_note_from_a_newer_format_version_is_read_without_crashing() -> None:
    text = "\n".join(
        [
            run_line("a", 1),
            '{"at":"2026-11-27T12:00:02.000Z","type":"deployment","target":"prod"}',
            '{"at":"2026-11-27T12:00:03.000Z","attempt":{"n":2},"pipeline":"a","run_id":"x","state":"succeeded","trigger":"schedule","type":"run"}',
            '{"at":"2026-11-27T12:00:04.000Z","cpu_peak":1.5,"pipeline":"b","run_id":"y","state":"oom","trigger":"push","type":"run"}',
            "not json at all",
            "[1, 2]",
        ]
    )
    lines = parse_lines(text)
    assert len(lines) == 4
    runs = runs_of(lines)
    assert [r.run_id for r in runs] == ["y", "a-1"]
    assert runs[0].model_extra == {"cpu_peak": 1.5}
    assert {"type": "deployment", "target": "prod", "at": "2026-11-27T12:00:02.000Z"} in lines


def test_combined_state_follows_github() -> None:
    def status(context: str, state: StatusState, seconds: int = 0) -> StatusLine:
        return StatusLine(at=T0 + timedelta(seconds=seconds), context=context, state=state)

    assert combined_state([]) is StatusState.PENDING
    assert combined_state([status("a", StatusState.SUCCESS)]) is StatusState.SUCCESS
    assert (
        combined_state([status("a", StatusState.SUCCESS), status("b", StatusState.PENDING)])
        is StatusState.PENDING
    )
    assert (
        combined_state([status("a", StatusState.ERROR), status("b", StatusState.PENDING)])
        is StatusState.FAILURE
    )
    newest = current_statuses(
        [status("a", StatusState.PENDING, 0), status("a", StatusState.SUCCESS, 5)]
    )
    assert newest["a"].state is StatusState.SUCCESS


# -- the store -----------------------------------------------------------------------------------


@pytest.fixture
def commit(git_repo: GitRepo) -> str:
    return git_repo.commit({"pipelines/a/pipeline.yaml": ""})


def test_append_and_read_back(git_repo: GitRepo, commit: str) -> None:
    store = NoteStore(git_repo.path)
    store.append({commit: [run_line("a", 1)]})
    store.append(
        {commit: [run_line("a", 2), run_line("a", 1)]}
    )  # the repeated line is not added twice
    assert store.read(commit) == f"{run_line('a', 1)}\n{run_line('a', 2)}\n"
    shown = git("notes", "--ref=fastflow", "show", commit, cwd=git_repo.path)
    assert shown == store.read(commit)


def test_batched_appends_make_one_notes_commit(git_repo: GitRepo) -> None:
    first = git_repo.commit({"a": "1"})
    second = git_repo.commit({"a": "2"})
    store = NoteStore(git_repo.path)
    store.append({first: [run_line("a", 1)], second: [run_line("a", 2), run_line("b", 3)]})
    log = git("log", "--format=%H", NOTES_REF, cwd=git_repo.path).split()
    assert len(log) == 1
    assert dict(store.notes()) == {
        first: f"{run_line('a', 1)}\n",
        second: f"{run_line('a', 2)}\n{run_line('b', 3)}\n",
    }


def test_note_keeps_the_newest_runs_per_pipeline(git_repo: GitRepo, commit: str) -> None:
    store = NoteStore(git_repo.path, max_runs=20)
    for n in range(30):
        store.append({commit: [run_line("a", n)]})
    store.append({commit: [run_line("b", n) for n in range(5)]})
    runs = runs_of(parse_lines(store.read(commit)))
    assert sorted(int(r.run_id.split("-")[1]) for r in runs if r.pipeline == "a") == list(
        range(10, 30)
    )
    assert len([r for r in runs if r.pipeline == "b"]) == 5


def test_fanned_out_notes_written_by_git_are_read_and_updated(
    git_repo: GitRepo, commit: str
) -> None:
    repo = pygit2.Repository(str(git_repo.path))
    blob = repo.create_blob(f"{run_line('a', 1)}\n".encode())
    inner = repo.TreeBuilder()
    inner.insert(commit[2:], blob, pygit2.enums.FileMode.BLOB)
    outer = repo.TreeBuilder()
    outer.insert(commit[:2], inner.write(), pygit2.enums.FileMode.TREE)
    sig = pygit2.Signature("git", "git@example.invalid")
    repo.create_commit(NOTES_REF, sig, sig, "fan-out", outer.write(), [])
    store = NoteStore(git_repo.path)
    assert store.read(commit) == f"{run_line('a', 1)}\n"
    store.append({commit: [run_line("a", 2)]})
    assert (
        git("notes", "--ref=fastflow", "show", commit, cwd=git_repo.path)
        == f"{run_line('a', 1)}\n{run_line('a', 2)}\n"
    )


WRITER = """
import sys
from reconciler.adapters.gitnotes import NoteStore
path, commit, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = NoteStore(path, max_runs=100_000)
for n in range(count):
    store.append({commit: ['{"at":"2026-11-27T12:00:00.000Z","n":%d,"w":"%s"}' % (n, name)]})
"""


def test_concurrent_writers_threads_and_processes_lose_no_line(
    git_repo: GitRepo, commit: str
) -> None:
    def write(name: str) -> None:
        store = NoteStore(git_repo.path, max_runs=100_000)
        for n in range(250):
            store.append({commit: [f'{{"at":"2026-11-27T12:00:00.000Z","n":{n},"w":"{name}"}}']})

    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(git_repo.path), commit, f"p{i}", "250"])
        for i in range(2)
    ]
    threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.wait(timeout=240) for p in processes] == [0, 0]
    lines = NoteStore(git_repo.path).read(commit).splitlines()
    assert len(lines) == 1000 and len(set(lines)) == 1000
    for name in ("t0", "t1", "p0", "p1"):
        assert sorted(json.loads(line)["n"] for line in lines if f'"w":"{name}"' in line) == list(
            range(250)
        )


# -- remotes ---------------------------------------------------------------------------------


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, str]:
    source = GitRepo(tmp_path / "source")
    head = source.commit({"pipelines/a/pipeline.yaml": "", "README": "x"})
    bare = tmp_path / "served" / "origin.git"
    git("clone", "-q", "--bare", str(source.path), str(bare), cwd=tmp_path)
    return bare, head


def test_two_clones_pushing_to_one_git_daemon_remote_lose_no_line(
    origin: tuple[Path, str], tmp_path: Path
) -> None:
    bare, head = origin
    with git_daemon(bare.parent) as base:
        url = f"{base}/origin.git"
        clones = [tmp_path / "clone-a", tmp_path / "clone-b"]
        for clone in clones:
            pygit2.clone_repository(url, str(clone))
        stores = [NoteStore(clone, max_runs=100_000) for clone in clones]

        def writer(index: int) -> None:
            for batch in range(10):
                lines = [
                    f'{{"at":"2026-11-27T12:00:00.000Z","b":{batch},"c":{index},"i":{i}}}'
                    for i in range(50)
                ]
                stores[index].append({head: lines})
                stores[index].sync(url, attempts=30)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for store in (*stores, stores[0]):
            store.sync(url)
        check = tmp_path / "check"
        pygit2.clone_repository(str(bare), str(check))
        git("fetch", "-q", "origin", f"{NOTES_REF}:{NOTES_REF}", cwd=check)
        remote_lines = git("notes", "--ref=fastflow", "show", head, cwd=check).splitlines()
    assert len(remote_lines) == 1000 and len(set(remote_lines)) == 1000
    assert (
        sorted(remote_lines)
        == sorted(stores[0].read(head).splitlines())
        == sorted(stores[1].read(head).splitlines())
    )


def test_sync_with_a_plain_path_remote(origin: tuple[Path, str], tmp_path: Path) -> None:
    bare, head = origin
    clone = tmp_path / "clone"
    pygit2.clone_repository(str(bare), str(clone))
    store = NoteStore(clone)
    store.append({head: [run_line("a", 1)]})
    result = store.sync(str(bare))
    assert result.pushed
    assert git("notes", "--ref=fastflow", "show", head, cwd=bare) == f"{run_line('a', 1)}\n"


def test_our_merge_agrees_with_git_notes_merge_cat_sort_uniq(
    origin: tuple[Path, str], tmp_path: Path
) -> None:
    bare, head = origin
    work = tmp_path / "work"
    pygit2.clone_repository(str(bare), str(work))
    repo = pygit2.Repository(str(work))
    ours = NoteStore(work, ref="refs/notes/fastflow")
    theirs = NoteStore(work, ref="refs/notes/theirs")
    shared = run_line("a", 1)
    ours.append({head: [shared, run_line("a", 3), run_line("b", 2)]})
    theirs.append({head: [run_line("a", 2), shared, run_line("c", 9)]})
    ours_tree = repo.references["refs/notes/fastflow"].peel(pygit2.Commit).tree
    theirs_tree = repo.references["refs/notes/theirs"].peel(pygit2.Commit).tree
    merged_tree = repo[merge_trees(repo, ours_tree, theirs_tree)]
    assert isinstance(merged_tree, pygit2.Tree)
    ours_text = merged_tree[head].data.decode()  # type: ignore[union-attr]
    before = (ours.read(head), theirs.read(head))
    env = ["-c", "user.name=t", "-c", "user.email=t@t"]
    git(
        *env,
        "notes",
        "--ref=fastflow",
        "merge",
        "-q",
        "-s",
        "cat_sort_uniq",
        "refs/notes/theirs",
        cwd=work,
    )
    git_text = git("notes", "--ref=fastflow", "show", head, cwd=work)
    assert ours_text == git_text == merge_notes(*before)
    assert len(git_text.splitlines()) == 5


def test_latest_runs_keeps_the_newest_per_pipeline_across_notes() -> None:
    notes = [
        "\n".join(run_line("a", n) for n in range(0, 300, 2)),
        "\n".join(run_line("a", n) for n in range(1, 300, 2)) + "\n" + run_line("b", 5),
        '{"type":"run","pipeline":"c","at":"2026-11-27T12:00:00.000Z","run_id":"c-1","state":"failed","trigger":"push"}',
        '{"at":"2026-11-27T12:00:01.000Z","pipeline":"we\\"ird","run_id":"w","state":"failed","trigger":"push","type":"run"}',
        "garbage",
    ]
    result = latest_runs(notes, 100)
    assert [r.run_id for r in result["a"]] == [f"a-{n}" for n in range(299, 199, -1)]
    assert [r.run_id for r in result["b"]] == ["b-5"]
    assert [r.run_id for r in result["c"]] == ["c-1"]
    assert [r.run_id for r in result['we"ird']] == ["w"]
