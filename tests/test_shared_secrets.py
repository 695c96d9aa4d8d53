"""Repo-level shared secrets (``secrets/<group>.sops.yaml`` / ``.fernet.yaml``) with the real `sops`
binary and a throwaway age key: who receives what, what fails where, what a plan says, and that
`fastflow secrets check` / `rotate` see the shared files too."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.adapters import gitrepo
from reconciler.adapters.fernet import FernetKeys, generate_key
from reconciler.adapters.fstree import directory_reader, load_directory
from reconciler.model.runs import Stream
from reconciler.runtime.unlocking import Unlocker
from tests.gitutil import GitRepo
from tests.test_secrets import age_identity, fastflow, run_in_memory

DSN = "canary-dsn-4be1-postgres://warehouse"
HOOK = "canary-hook-90c7-https://alerts"


class Repo:
    """The fixture repository: three pipelines and two shared files."""

    def __init__(self, root: Path, env: dict[str, str], fernet_key: str) -> None:
        self.root, self.env, self.fernet_key = root, env, fernet_key


def _encrypt_sops(repo: Path, path: str, env: dict[str, str]) -> None:
    done = fastflow("secrets", "encrypt", "--sops", "--file", str(repo / path), env=env, cwd=repo)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def shared_repo(tmp_path: Path) -> Repo:
    key, public = age_identity(tmp_path, "team")
    fernet_key = generate_key()
    fernet = FernetKeys([fernet_key])
    root = tmp_path / "repo"
    files = {
        ".sops.yaml": (
            "creation_rules:\n"
            "  - path_regex: (pipelines/.*/secrets|secrets/[^/]*)\\.sops\\.yaml$\n"
            f"    age: {public}\n"
        ),
        "secrets/warehouse.sops.yaml": f"DSN: {DSN}\nUNUSED: nobody-asks-for-this\n",
        "secrets/alerts.fernet.yaml": f"WEBHOOK: {fernet.encrypt(HOOK)}\n",
        "pipelines/asks/pipeline.yaml": "network: none\nsecrets: [DSN, WEBHOOK]\n",
        "pipelines/silent/pipeline.yaml": "network: none\n",
        "pipelines/silent/secrets.fernet.yaml": f"OWN: {fernet.encrypt('own-value-123')}\n",
        "pipelines/override/pipeline.yaml": "network: none\nsecrets: [DSN]\n",
        "pipelines/override/secrets.fernet.yaml": f"DSN: {fernet.encrypt('local-dsn-456')}\n",
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for name in ("asks", "silent", "override"):
        (root / f"pipelines/{name}/main.py").write_text("print(1)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "FASTFLOW_FERNET"))}
    env |= {"SOPS_AGE_KEY_FILE": str(key), "FASTFLOW_FERNET_KEYS": fernet_key}
    _encrypt_sops(root, "secrets/warehouse.sops.yaml", env)
    assert DSN not in (root / "secrets/warehouse.sops.yaml").read_text()
    return Repo(root, env, fernet_key)


def revealed(values: dict[str, dict[str, object]]) -> dict[str, dict[str, str]]:
    return {p: {k: v.reveal() for k, v in s.items()} for p, s in values.items()}  # type: ignore[attr-defined]


EXPECTED = {
    "asks": {"DSN": DSN, "WEBHOOK": HOOK},
    "silent": {"OWN": "own-value-123"},
    "override": {"DSN": "local-dsn-456"},
}


def test_pipelines_receive_only_the_shared_secrets_they_name(shared_repo: Repo) -> None:
    state = load_directory(shared_repo.root)
    assert state.problems == ()
    assert state.pipelines["asks"].shared_secrets == {
        "DSN": ("secrets/warehouse.sops.yaml", state.pipelines["asks"].shared_secrets["DSN"][1]),
        "WEBHOOK": (
            "secrets/alerts.fernet.yaml",
            state.pipelines["asks"].shared_secrets["WEBHOOK"][1],
        ),
    }
    unlocked, values = Unlocker(shared_repo.env).unlock(state, directory_reader(shared_repo.root))
    assert unlocked.problems == ()
    assert revealed(values) == EXPECTED  # UNUSED reaches nobody; own DSN wins in `override`


def tree_of(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_the_same_from_a_commit(shared_repo: Repo, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "git")
    head = repo.commit(tree_of(shared_repo.root))
    git = gitrepo.open_repo(repo.path)
    state = gitrepo.load_commit(git, gitrepo.resolve_commit(git, head))
    unlocked, values = Unlocker(shared_repo.env).unlock(state, gitrepo.commit_reader(git, head))
    assert unlocked.problems == () and revealed(values) == EXPECTED


def test_an_undecryptable_shared_file_quarantines_only_who_asked(shared_repo: Repo) -> None:
    env = {k: v for k, v in shared_repo.env.items() if k != "SOPS_AGE_KEY_FILE"}
    other, _ = age_identity(shared_repo.root.parent, "stranger")
    env["SOPS_AGE_KEY_FILE"] = str(other)
    state = load_directory(shared_repo.root)
    unlocked, values = Unlocker(env).unlock(state, directory_reader(shared_repo.root))
    assert set(unlocked.invalid) == {"asks"}
    [problem] = unlocked.invalid["asks"]
    assert problem.path == "secrets/warehouse.sops.yaml" and "cannot decrypt" in problem.message
    assert DSN not in str(problem) and HOOK not in str(problem)
    assert revealed(values) == {k: v for k, v in EXPECTED.items() if k != "asks"}


def test_a_bad_token_for_a_name_nobody_asks_for_harms_no_one(shared_repo: Repo) -> None:
    alerts = shared_repo.root / "secrets/alerts.fernet.yaml"
    stranger = FernetKeys([generate_key()]).encrypt("x" * 12)
    alerts.write_text(alerts.read_text() + f"PAGER: {stranger}\n")
    state = load_directory(shared_repo.root)
    unlocked, values = Unlocker(shared_repo.env).unlock(state, directory_reader(shared_repo.root))
    assert unlocked.problems == () and revealed(values) == EXPECTED
    (shared_repo.root / "pipelines/silent/pipeline.yaml").write_text("secrets: [OWN, PAGER]\n")
    unlocked, _ = Unlocker(shared_repo.env).unlock(
        load_directory(shared_repo.root), directory_reader(shared_repo.root)
    )
    [problem] = unlocked.invalid["silent"]
    assert (problem.path, problem.line) == ("secrets/alerts.fernet.yaml", 2)
    assert "secret 'PAGER': cannot decrypt" in problem.message


def test_plan_names_a_changed_shared_secret_for_the_pipelines_that_use_it(
    shared_repo: Repo, tmp_path: Path
) -> None:
    repo = GitRepo(tmp_path / "git")
    base = repo.commit(tree_of(shared_repo.root))
    shared = shared_repo.root / "secrets/warehouse.sops.yaml"
    shared.write_text("DSN: a-new-dsn-value-789\nUNUSED: u\n")
    _encrypt_sops(shared_repo.root, "secrets/warehouse.sops.yaml", shared_repo.env)
    head = repo.commit({"secrets/warehouse.sops.yaml": shared.read_text()})
    done = fastflow(
        "plan", base, head, "--repo", str(repo.path), "--format", "json", env=shared_repo.env
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    changes = {c["name"]: c for c in plan["changes"]}
    assert set(changes) == {"asks"}  # `override` uses its own DSN, `silent` asks for nothing
    assert changes["asks"]["secrets_changed"] == ["DSN"]
    assert "a-new-dsn-value-789" not in done.stdout and DSN not in done.stdout


def test_secrets_check_and_rotate_see_the_shared_files(shared_repo: Repo) -> None:
    done = fastflow("secrets", "check", str(shared_repo.root), env=shared_repo.env)
    assert done.returncode == 0, done.stdout + done.stderr
    new_key = generate_key()
    env = shared_repo.env | {"FASTFLOW_FERNET_KEYS": f"{new_key},{shared_repo.fernet_key}"}
    done = fastflow("secrets", "rotate", "--repo", str(shared_repo.root), env=env)
    assert done.returncode == 0, done.stderr
    assert "secrets/alerts.fernet.yaml" in done.stdout
    only_new = shared_repo.env | {"FASTFLOW_FERNET_KEYS": new_key}
    unlocked, values = Unlocker(only_new).unlock(
        load_directory(shared_repo.root), directory_reader(shared_repo.root)
    )
    assert unlocked.problems == () and revealed(values) == EXPECTED
    # a shared SOPS file for a recipient .sops.yaml does not list is reported by `check`
    _, stranger = age_identity(shared_repo.root.parent, "stranger")
    rules = shared_repo.root / ".sops.yaml"
    rules.write_text(rules.read_text().replace("age: ", f"age: {stranger},", 1))
    done = fastflow("secrets", "check", str(shared_repo.root), env=shared_repo.env)
    assert done.returncode == 1
    assert "secrets/warehouse.sops.yaml: recipients" in done.stdout + done.stderr


def test_a_shared_value_is_masked_in_the_run_log(shared_repo: Repo, tmp_path: Path) -> None:
    state = load_directory(shared_repo.root)
    _, values = Unlocker(shared_repo.env).unlock(state, directory_reader(shared_repo.root))
    output = ((Stream.STDOUT, f"connecting to {DSN}"),)
    lines, outcome = run_in_memory(tmp_path, "asks", output, values["asks"])
    assert lines == ["connecting to ***"]
    assert DSN not in outcome.model_dump_json()


def test_validate_reports_shared_file_problems_and_exit_one(shared_repo: Repo) -> None:
    (shared_repo.root / "secrets/broken.sops.yaml").write_text("TOKEN: plain\n")
    done = fastflow("validate", str(shared_repo.root), env=shared_repo.env)
    assert done.returncode == 1
    assert done.stdout.startswith("secrets/broken.sops.yaml:1:1: not a SOPS file")
