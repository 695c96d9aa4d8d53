"""Secrets with the real `sops` binary and throwaway age keys, Fernet rotation, masking, allow-lists."""

from __future__ import annotations

import asyncio
import base64
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.adapters.fernet import FernetKeys, generate_key
from reconciler.adapters.fstree import directory_reader, load_directory
from reconciler.core.redacting import Redactor, StreamRedactor
from reconciler.errors import SecretError
from reconciler.executors.memory import MemoryExecutor, Program
from reconciler.model.runs import LogLine, RunOutcome, RunRequest, Stream, Trigger
from reconciler.model.secrets import SecretValue
from reconciler.runtime.runs import execute
from reconciler.runtime.unlocking import Decrypted, Unlocker

CANARY = "canary-8d2f6b1e-secret"


def age_identity(folder: Path, name: str) -> tuple[Path, str]:
    path = folder / f"{name}.agekey"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    public = next(
        line.split(": ")[1]
        for line in path.read_text().splitlines()
        if line.startswith("# public key")
    )
    return path, public


def fastflow(
    *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        input=stdin,
        timeout=120,
    )


@pytest.fixture
def sops_repo(tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    """A repository whose pipeline `p` has a SOPS file encrypted for one throwaway age key."""
    key, public = age_identity(tmp_path, "one")
    repo = tmp_path / "repo"
    (repo / "pipelines" / "p").mkdir(parents=True)
    (repo / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: pipelines/.*/secrets\\.sops\\.yaml$\n    age: {public}\n"
    )
    (repo / "pipelines/p/pipeline.yaml").write_text("network: none\n")
    (repo / "pipelines/p/main.py").write_text("print(1)\n")
    (repo / "pipelines/p/secrets.sops.yaml").write_text(f"TOKEN: {CANARY}\nOTHER: other-value-1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "FASTFLOW_FERNET"))}
    env["SOPS_AGE_KEY_FILE"] = str(key)
    done = fastflow(
        "secrets",
        "encrypt",
        "--sops",
        "--file",
        str(repo / "pipelines/p/secrets.sops.yaml"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert CANARY not in (repo / "pipelines/p/secrets.sops.yaml").read_text()
    return repo, env, public


def unlock(repo: Path, env: dict[str, str]) -> tuple[list[str], dict[str, dict[str, SecretValue]]]:
    state = load_directory(repo)
    new_state, values = Unlocker(env).unlock(state, directory_reader(repo))
    return [str(p) for p in new_state.problems], values


def test_sops_file_decrypts_with_the_right_identity(
    sops_repo: tuple[Path, dict[str, str], str],
) -> None:
    repo, env, _ = sops_repo
    problems, values = unlock(repo, env)
    assert problems == []
    assert {k: v.reveal() for k, v in values["p"].items()} == {
        "OTHER": "other-value-1",
        "TOKEN": CANARY,
    }


def test_tampered_file_fails_validation_naming_the_file_not_the_value(
    sops_repo: tuple[Path, dict[str, str], str],
) -> None:
    repo, env, _ = sops_repo
    path = repo / "pipelines/p/secrets.sops.yaml"
    document = yaml.safe_load(path.read_text())
    data = document["TOKEN"]
    flipped = (
        data.replace("data:", "data:A", 1)
        if "data:A" not in data
        else data.replace("data:A", "data:B", 1)
    )
    path.write_text(path.read_text().replace(data, flipped))
    problems, values = unlock(repo, env)
    assert problems == [
        "pipelines/p/secrets.sops.yaml:1:1: cannot decrypt: tampered or corrupted: the MAC check failed"
    ]
    assert "p" not in values


def test_wrong_and_missing_identities_are_told_apart(
    sops_repo: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    repo, env, _ = sops_repo
    other, _ = age_identity(tmp_path, "two")
    problems, _ = unlock(repo, {**env, "SOPS_AGE_KEY_FILE": str(other)})
    assert problems == [
        "pipelines/p/secrets.sops.yaml:1:1: cannot decrypt: "
        "none of the configured age identities is a recipient of this file"
    ]
    no_key = {k: v for k, v in env.items() if k != "SOPS_AGE_KEY_FILE"} | {"HOME": str(tmp_path)}
    problems, _ = unlock(repo, no_key)
    assert problems == [
        "pipelines/p/secrets.sops.yaml:1:1: cannot decrypt: "
        "no age identity configured (set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY)"
    ]


def test_sops_key_given_inline_decrypts_too(sops_repo: tuple[Path, dict[str, str], str]) -> None:
    repo, env, _ = sops_repo
    inline = Path(env["SOPS_AGE_KEY_FILE"]).read_text()
    problems, values = unlock(
        repo, {k: v for k, v in env.items() if k != "SOPS_AGE_KEY_FILE"} | {"SOPS_AGE_KEY": inline}
    )
    assert problems == [] and values["p"]["TOKEN"].reveal() == CANARY


def test_check_and_rotate_follow_sops_yaml_recipients(
    sops_repo: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    repo, env, first = sops_repo
    second_key, second = age_identity(tmp_path, "second")
    (repo / ".sops.yaml").write_text(
        (repo / ".sops.yaml").read_text().replace(first, f"{first},{second}")
    )
    checked = fastflow("secrets", "check", str(repo), env=env)
    assert checked.returncode == 1 and "differ from .sops.yaml" in checked.stdout
    before = yaml.safe_load((repo / "pipelines/p/secrets.sops.yaml").read_text())["TOKEN"]
    rotated = fastflow("secrets", "rotate", "--repo", str(repo), env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "recipients updated from .sops.yaml (sops updatekeys)" in rotated.stdout
    assert (
        yaml.safe_load((repo / "pipelines/p/secrets.sops.yaml").read_text())["TOKEN"] == before
    )  # same data key
    assert fastflow("secrets", "check", str(repo), env=env).returncode == 0
    problems, values = unlock(
        repo, {**env, "SOPS_AGE_KEY_FILE": str(second_key)}
    )  # the new recipient can read it
    assert problems == [] and values["p"]["TOKEN"].reveal() == CANARY
    rotated = fastflow("secrets", "rotate", "--repo", str(repo), "--new-data-key", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert yaml.safe_load((repo / "pipelines/p/secrets.sops.yaml").read_text())["TOKEN"] != before
    assert unlock(repo, env)[1]["p"]["TOKEN"].reveal() == CANARY
    for output in (checked, rotated):
        assert CANARY not in output.stdout + output.stderr


def test_fernet_rotation_keeps_old_tokens_readable_then_moves_them(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    repo = tmp_path / "repo"
    (repo / "pipelines/p").mkdir(parents=True)
    (repo / "pipelines/p/pipeline.yaml").write_text("")
    (repo / "pipelines/p/main.py").write_text("")
    env = {**os.environ, "FASTFLOW_FERNET_KEYS": old}
    token = fastflow("secrets", "encrypt", "--fernet", env=env, stdin=CANARY + "\n").stdout.strip()
    assert token.startswith("gAAAAA") and CANARY not in token
    (repo / "pipelines/p/secrets.fernet.yaml").write_text(
        f"# comments survive rotation\nTOKEN: {token}\n"
    )
    assert (
        unlock(repo, {"FASTFLOW_FERNET_KEYS": f"{new},{old}"})[1]["p"]["TOKEN"].reveal() == CANARY
    )
    problems, _ = unlock(repo, {"FASTFLOW_FERNET_KEYS": new})
    assert problems == [
        "pipelines/p/secrets.fernet.yaml:2:1: secret 'TOKEN': cannot decrypt: "
        "no key in FASTFLOW_FERNET_KEYS decrypts it (wrong key or damaged token)"
    ]
    rotated = fastflow(
        "secrets",
        "rotate",
        "--repo",
        str(repo),
        env={**os.environ, "FASTFLOW_FERNET_KEYS": f"{new},{old}"},
    )
    assert rotated.returncode == 0, rotated.stderr
    text = (repo / "pipelines/p/secrets.fernet.yaml").read_text()
    assert text.startswith("# comments survive rotation\nTOKEN: gAAAAA") and token not in text
    assert unlock(repo, {"FASTFLOW_FERNET_KEYS": new})[1]["p"]["TOKEN"].reveal() == CANARY


def test_fernet_keys_need_to_be_keys() -> None:
    with pytest.raises(SecretError, match="not a Fernet key"):
        FernetKeys(["not-a-key"])
    with pytest.raises(SecretError, match="no Fernet key configured"):
        FernetKeys.from_env({})
    key = generate_key()
    assert repr(FernetKeys([key])) == "FernetKeys(1 keys)"


@pytest.mark.parametrize(
    "text",
    [
        CANARY,
        f"token={CANARY}&x=1",
        base64.b64encode(CANARY.encode()).decode(),
        base64.b64encode(f"user:{CANARY}".encode()).decode(),
        base64.urlsafe_b64encode(f"xx{CANARY}yyy".encode()).decode(),
        '{"token": "' + CANARY + '"}',
    ],
)
def test_redactor_masks_plain_encoded_and_embedded_forms(text: str) -> None:
    redactor = Redactor([CANARY])
    masked = redactor.redact(text)
    assert "***" in masked
    assert CANARY not in masked


def test_url_encoded_value_with_reserved_characters_is_masked() -> None:
    value = "p@ss/w0rd&more=1"
    from urllib.parse import quote, quote_plus

    redactor = Redactor([value])
    assert redactor.redact(f"?a={quote(value, safe='')}") == "?a=***"
    assert redactor.redact(f"?a={quote_plus(value)}") == "?a=***"


def test_stream_redactor_masks_a_value_split_across_chunks() -> None:
    stream = StreamRedactor(Redactor([CANARY]))
    out = (
        stream.feed("start " + CANARY[:7])
        + stream.feed(CANARY[7:15])
        + stream.feed(CANARY[15:] + " end")
        + stream.flush()
    )
    assert out == "start *** end"


def test_secret_value_never_shows_itself() -> None:
    value = SecretValue(CANARY)
    for text in (
        repr(value),
        str(value),
        f"{value}",
        f"{value!r}",
        repr([value]),
        repr({"k": value}),
    ):
        assert CANARY not in text
    with pytest.raises(TypeError):
        pickle.dumps(value)
    assert value.reveal() == CANARY


def fernet_pipeline(tmp: Path, spec: str, secrets: dict[str, str]) -> tuple[Path, str]:
    """A repository with one pipeline ``p`` and a Fernet file of ``secrets``; and the key."""
    key = generate_key()
    keys = FernetKeys([key])
    repo = tmp / "repo"
    (repo / "pipelines/p").mkdir(parents=True)
    (repo / "pipelines/p/pipeline.yaml").write_text(spec)
    (repo / "pipelines/p/main.py").write_text("")
    (repo / "pipelines/p/secrets.fernet.yaml").write_text(
        "".join(f"{name}: {keys.encrypt(value)}\n" for name, value in secrets.items())
    )
    return repo, key


def test_allow_list_limits_what_a_pipeline_receives_and_lines_are_masked(tmp_path: Path) -> None:
    repo, key = fernet_pipeline(
        tmp_path, "secrets: [TOKEN]\n", {"TOKEN": CANARY, "OTHER": "other-secret"}
    )
    problems, values = unlock(repo, {"FASTFLOW_FERNET_KEYS": key})
    assert problems == [] and set(values["p"]) == {"TOKEN"}
    encoded = base64.b64encode(CANARY.encode()).decode()
    lines, outcome = run_in_memory(
        tmp_path,
        "p",
        ((Stream.STDOUT, f"plain {CANARY}"), (Stream.STDERR, f"b64 {encoded}")),
        values["p"],
        exit_code=1,
    )
    assert lines == ["plain ***", "b64 ***"]
    assert CANARY not in outcome.model_dump_json()


def run_in_memory(
    tmp: Path,
    pipeline: str,
    output: tuple[tuple[Stream, str], ...],
    secrets: dict[str, SecretValue],
    exit_code: int = 0,
) -> tuple[list[str], RunOutcome]:
    """Run a program that prints ``output`` on the memory executor with ``secrets``; the log
    lines as stored and the outcome."""
    executor = MemoryExecutor()
    request = RunRequest(
        run_id="r1",
        pipeline=pipeline,
        commit="0" * 40,
        trigger=Trigger.MANUAL,
        image="fastflow-runner:local",
        command=["x"],
        workspace=str(tmp),
    )
    executor.programs["r1"] = Program(output, exit_code=exit_code)
    lines: list[LogLine] = []
    outcome = asyncio.run(execute(executor, request, lines.append, secrets))
    return [line.text for line in lines], outcome


def test_an_old_secret_value_is_forgotten_after_rotation(tmp_path: Path) -> None:
    repo, key = fernet_pipeline(tmp_path, "network: none\n", {"TOKEN": "old-value-123"})
    keys = FernetKeys([key])
    secret_file = repo / "pipelines/p/secrets.fernet.yaml"
    unlocker = Unlocker({"FASTFLOW_FERNET_KEYS": key})
    _, values = unlocker.unlock(load_directory(repo), directory_reader(repo))
    assert values["p"]["TOKEN"].reveal() == "old-value-123"
    secret_file.write_text(f"TOKEN: {keys.encrypt('new-value-456')}\n")
    for _ in range(17):
        _, values = unlocker.unlock(load_directory(repo), directory_reader(repo))
    assert values["p"]["TOKEN"].reveal() == "new-value-456"
    held = [v for d in unlocker._cache.values() for v in d.values.values()]
    assert held == ["new-value-456"]


def test_a_decrypted_file_never_shows_its_values() -> None:
    decrypted = Decrypted({"TOKEN": CANARY})
    assert CANARY not in repr(decrypted) and CANARY not in str(decrypted)
