"""`fastflow validate` on broken repositories: exit code 1 and the exact `path:line:col` of each problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.gitutil import Content, Symlink, write_tree

P = "pipelines/p/pipeline.yaml"
MAIN = {"pipelines/p/main.py": "print('hi')\n"}
Q_OK = {"pipelines/q/pipeline.yaml": "description: q\n", "pipelines/q/main.py": "print('q')\n"}
FERNET = "gAAAAABmAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


def spec(text: str, **extra: Content) -> dict[str, Content]:
    return {P: text, **MAIN, **extra}


# (id, files, [(location, message fragment), ...]) -- every problem of the commit, in order
CASES: list[tuple[str, dict[str, Content], list[tuple[str, str]]]] = [
    (
        "yaml-unclosed-flow",
        spec("schedules: [\n"),
        [(f"{P}:2:1", "while parsing a flow node: did not find expected node content")],
    ),
    (
        "yaml-bad-indent",
        spec("description: x\n  bad: 1\n"),
        [(f"{P}:2:6", "mapping values are not allowed")],
    ),
    (
        "yaml-tab",
        spec("args:\n\t- a\n"),
        [(f"{P}:2:1", "found character that cannot start any token")],
    ),
    (
        "yaml-two-documents",
        spec("description: a\n---\ndescription: b\n"),
        [(f"{P}:2:1", "expected a single document")],
    ),
    (
        "duplicate-key",
        spec("timeout: 1m\ntimeout: 2m\n"),
        [(f"{P}:2:1", "duplicate key 'timeout'")],
    ),
    ("top-level-list", spec("- a\n- b\n"), [(f"{P}:1:1", "top level must be a mapping")]),
    (
        "unknown-key",
        spec("descripton: x\n"),
        [(f"{P}:1:1", "unknown key 'descripton'; did you mean 'description'?")],
    ),
    (
        "unknown-nested-key",
        spec("retries:\n  maximum: 3\n"),
        [(f"{P}:2:3", "retries.maximum: unknown key 'maximum'")],
    ),
    (
        "bool-wrong",
        spec("on_push: maybe\n"),
        [(f"{P}:1:10", "on_push: expected true or false, found the string 'maybe'")],
    ),
    (
        "yes-is-not-a-bool",
        spec("suspend: yes\n"),
        [(f"{P}:1:10", "suspend: expected true or false")],
    ),
    ("args-not-a-list", spec("args: --full\n"), [(f"{P}:1:7", "args: expected a list")]),
    (
        "python-as-number",
        spec("python: 3.12\n"),
        [(f"{P}:1:9", "python: expected a string, found the number 3.12; put it in quotes")],
    ),
    (
        "env-value-number",
        spec("env:\n  PORT: 8080\n"),
        [(f"{P}:2:9", "env.PORT: expected a string")],
    ),
    ("env-bad-name", spec("env:\n  1BAD: x\n"), [(f"{P}:2:3", "env.1BAD: '1BAD' does not match")]),
    (
        "env-reserved-name",
        spec("env:\n  FASTFLOW_RUN_ID: x\n"),
        [(f"{P}:2:3", "env: env name 'FASTFLOW_RUN_ID' is reserved")],
    ),
    (
        "cron-out-of-range",
        spec('schedules:\n  - cron: "61 * * * *"\n'),
        [(f"{P}:2:11", "schedules[0].cron: '61 * * * *' is not a cron expression")],
    ),
    (
        "cron-six-fields",
        spec('schedules:\n  - cron: "0 0 3 * * *"\n'),
        [(f"{P}:2:11", "it has 6 fields, cron needs 5")],
    ),
    (
        "cron-words",
        spec("schedules:\n  - cron: every day\n"),
        [(f"{P}:2:11", "'every day' is not a cron expression")],
    ),
    (
        "cron-bad-alias",
        spec("schedules:\n  - cron: '@reboot'\n"),
        [(f"{P}:2:11", "'@reboot' is not a cron alias")],
    ),
    (
        "timezone-unknown",
        spec('schedules:\n  - cron: "0 3 * * *"\n    timezone: Europe/Atlantis\n'),
        [(f"{P}:3:15", "'Europe/Atlantis' is not a known time zone")],
    ),
    (
        "timezone-path",
        spec('schedules:\n  - cron: "0 3 * * *"\n    timezone: ../../etc/passwd\n'),
        [(f"{P}:3:15", "is not a known time zone")],
    ),
    (
        "schedule-both-kinds",
        spec('schedules:\n  - cron: "0 3 * * *"\n    every: 1h\n'),
        [(f"{P}:2:5", "schedules[0]: a schedule needs exactly one of 'cron' or 'every'")],
    ),
    (
        "schedule-no-kind",
        spec("schedules:\n  - timezone: UTC\n"),
        [(f"{P}:2:5", "exactly one of 'cron' or 'every'")],
    ),
    (
        "schedule-names-repeat",
        spec("schedules:\n  - {every: 1h, name: x}\n  - {every: 2h, name: x}\n"),
        [(f"{P}:2:3", "schedule names must be unique; repeated: x")],
    ),
    ("duration-no-unit", spec("timeout: 30\n"), [(f"{P}:1:10", "timeout: 30 has no unit")]),
    ("duration-words", spec("timeout: 1 hour\n"), [(f"{P}:1:10", "'1 hour' is not a duration")]),
    (
        "duration-bad-every",
        spec("schedules:\n  - every: 15x\n"),
        [(f"{P}:2:12", "schedules[0].every: '15x' is not a duration")],
    ),
    (
        "size-words",
        spec("resources:\n  memory: lots\n"),
        [(f"{P}:2:11", "resources.memory: 'lots' is not a size")],
    ),
    (
        "size-too-small",
        spec("resources:\n  memory: 1Ki\n"),
        [(f"{P}:2:11", "resources.memory: input should be greater than or equal to")],
    ),
    (
        "cpus-zero",
        spec("resources:\n  cpus: 0\n"),
        [(f"{P}:2:9", "resources.cpus: input should be greater than 0")],
    ),
    (
        "retries-negative",
        spec("retries:\n  max: -1\n"),
        [(f"{P}:2:8", "retries.max: input should be greater than or equal to 0")],
    ),
    (
        "concurrency-unknown",
        spec("concurrency: sometimes\n"),
        [
            (
                f"{P}:1:14",
                "'sometimes' is not allowed; use one of 'skip', 'queue', 'replace' or 'allow'",
            )
        ],
    ),
    ("missed-unknown", spec("missed: never\n"), [(f"{P}:1:9", "missed: 'never' is not allowed")]),
    ("network-host", spec("network: host\n"), [(f"{P}:1:10", "network: 'host' is not allowed")]),
    (
        "name-uppercase",
        {"pipelines/My_Pipe/pipeline.yaml": "", "pipelines/My_Pipe/main.py": ""},
        [("pipelines/My_Pipe/pipeline.yaml:1:1", "pipeline name 'My_Pipe' must match")],
    ),
    (
        "name-too-long",
        {f"pipelines/{'a' * 64}/pipeline.yaml": "", f"pipelines/{'a' * 64}/main.py": ""},
        [(f"pipelines/{'a' * 64}/pipeline.yaml:1:1", "must match")],
    ),
    (
        "entrypoint-missing",
        spec("entrypoint: run.py\n"),
        [(f"{P}:1:13", "entrypoint: file 'run.py' not found")],
    ),
    (
        "entrypoint-absolute",
        spec("entrypoint: /etc/passwd\n"),
        [(f"{P}:1:13", "must be a relative path inside the pipeline folder")],
    ),
    (
        "entrypoint-dotdot",
        spec("entrypoint: ../q/main.py\n"),
        [(f"{P}:1:13", "entrypoint: entrypoint '../q/main.py' must not contain '..'")],
    ),
    (
        "default-entrypoint-missing",
        {P: "description: no code\n"},
        [(f"{P}:1:1", "entrypoint: file 'main.py' not found")],
    ),
    (
        "symlink-absolute",
        spec("", **{"pipelines/p/data": Symlink("/etc/passwd")}),
        [("pipelines/p/data:1:1", "symlink points outside the pipeline folder: '/etc/passwd'")],
    ),
    (
        "symlink-relative-escape",
        spec("", **{"pipelines/p/cfg": Symlink("../../fastflow.yaml")}),
        [("pipelines/p/cfg:1:1", "symlink points outside")],
    ),
    (
        "entrypoint-via-escaping-symlink",
        spec("entrypoint: run.py\n", **{"pipelines/p/run.py": Symlink("../q/main.py"), **Q_OK}),
        [
            (f"{P}:1:13", "file 'run.py' not found"),
            ("pipelines/p/run.py:1:1", "symlink points outside"),
        ],
    ),
    (
        "pipeline-yaml-symlink",
        {P: Symlink("../q/pipeline.yaml"), **MAIN, **Q_OK},
        [(f"{P}:1:1", "must be a regular file, not a symlink")],
    ),
    (
        "after-unknown",
        spec("after: [extract]\n"),
        [(f"{P}:1:9", "after[0]: no pipeline named 'extract'")],
    ),
    (
        "after-typo",
        spec("after: [qq]\n", **Q_OK),
        [(f"{P}:1:9", "no pipeline named 'qq'; did you mean 'q'?")],
    ),
    ("after-self", spec("after: [p]\n"), [(f"{P}:1:9", "after[0]: cycle: p -> p")]),
    (
        "after-cycle",
        {
            **spec("after: [q]\n"),
            "pipelines/q/pipeline.yaml": "after:\n  - pipeline: p\n    on: always\n",
            "pipelines/q/main.py": "",
        },
        [
            (f"{P}:1:9", "after[0]: cycle: p -> q -> p"),
            ("pipelines/q/pipeline.yaml:2:5", "after[0]: cycle: q -> p -> q"),
        ],
    ),
    (
        "after-bad-condition",
        spec("after:\n  - pipeline: q\n    on: done\n", **Q_OK),
        [(f"{P}:3:9", "after[0].on: 'done' is not allowed")],
    ),
    (
        "env-collides-with-secret",
        spec("env:\n  TOKEN: x\n", **{"pipelines/p/secrets.fernet.yaml": f"TOKEN: {FERNET}\n"}),
        [(f"{P}:2:3", "env.TOKEN: name collides with a secret")],
    ),
    (
        "schedule-env-collides",
        spec(
            "schedules:\n  - every: 1h\n    env: {TOKEN: x}\n",
            **{"pipelines/p/secrets.fernet.yaml": f"TOKEN: {FERNET}\n"},
        ),
        [(f"{P}:3:11", "schedules[0].env.TOKEN: name collides")],
    ),
    (
        "secret-not-in-allowlist",
        spec("secrets: [API_KEY]\n"),
        [
            (
                f"{P}:1:11",
                "secrets[0]: no secret named 'API_KEY' (own: none; shared in secrets/: none)",
            )
        ],
    ),
    (
        "shared-secret-in-two-files",
        spec(
            "secrets: [DSN]\n",
            **{
                "secrets/a.fernet.yaml": f"DSN: {FERNET}\n",
                "secrets/b.fernet.yaml": f"DSN: {FERNET}\n",
            },
        ),
        [
            (
                f"{P}:1:11",
                "secrets[0]: secret 'DSN' is defined in secrets/a.fernet.yaml and "
                "secrets/b.fernet.yaml; keep it in one file",
            )
        ],
    ),
    (
        "shared-secret-unknown-lists-both-kinds",
        spec(
            "secrets: [TOKEN, DNS]\n",
            **{
                "pipelines/p/secrets.fernet.yaml": f"TOKEN: {FERNET}\n",
                "secrets/db.fernet.yaml": f"DSN: {FERNET}\n",
            },
        ),
        [(f"{P}:1:18", "secrets[1]: no secret named 'DNS' (own: TOKEN; shared in secrets/: DSN)")],
    ),
    (
        "env-collides-with-a-granted-shared-secret",
        spec("secrets: [DSN]\nenv:\n  DSN: x\n", **{"secrets/db.fernet.yaml": f"DSN: {FERNET}\n"}),
        [(f"{P}:3:3", "env.DSN: name collides with a secret of the same name")],
    ),
    (
        "shared-file-not-sops",
        spec("", **{"secrets/db.sops.yaml": "DSN: plain\n"}),
        [("secrets/db.sops.yaml:1:1", "not a SOPS file")],
    ),
    (
        "shared-file-plaintext-fernet",
        spec("", **{"secrets/db.fernet.yaml": "\nDSN: hunter2\n"}),
        [("secrets/db.fernet.yaml:2:1", "secret 'DSN': the value is not a Fernet token")],
    ),
    (
        "shared-group-bad-name",
        spec("", **{"secrets/Team DB.fernet.yaml": f"DSN: {FERNET}\n"}),
        [("secrets/Team DB.fernet.yaml:1:1", "shared secrets group 'Team DB' must match")],
    ),
    (
        "shared-file-yaml-error",
        spec("", **{"secrets/db.fernet.yaml": "DSN: [\n"}),
        [("secrets/db.fernet.yaml:2:1", "")],
    ),
    (
        "fernet-plaintext",
        spec("", **{"pipelines/p/secrets.fernet.yaml": "TOKEN: hunter2\n"}),
        [
            (
                "pipelines/p/secrets.fernet.yaml:1:1",
                "secret 'TOKEN': the value is not a Fernet token",
            )
        ],
    ),
    (
        "fernet-nested",
        spec("", **{"pipelines/p/secrets.fernet.yaml": "TOKEN:\n  a: b\n"}),
        [
            (
                "pipelines/p/secrets.fernet.yaml:1:1",
                "secret 'TOKEN': the value must be a single string",
            )
        ],
    ),
    (
        "sops-without-metadata",
        spec("", **{"pipelines/p/secrets.sops.yaml": "TOKEN: hunter2\n"}),
        [("pipelines/p/secrets.sops.yaml:1:1", "not a SOPS file")],
    ),
    (
        "secret-bad-name",
        spec("", **{"pipelines/p/secrets.fernet.yaml": f"my-token: {FERNET}\n"}),
        [
            (
                "pipelines/p/secrets.fernet.yaml:1:1",
                "secret name 'my-token' is not a valid environment variable name",
            )
        ],
    ),
    (
        "yaml-over-limit",
        spec("description: '" + "x" * 300_000 + "'\n"),
        [(f"{P}:1:1", "file is 293 KiB, over the 256 KiB limit")],
    ),
    ("alias-bomb", spec(BOMB), [(f"{P}:", "document expands to too many nodes")]),
    ("invalid-utf8", spec(b"description: caf\xe9\n"), [(f"{P}:1:17", "file is not valid UTF-8")]),  # type: ignore[dict-item]
    (
        "control-character",
        spec("description: a\x07b\n"),
        [(f"{P}:1:15", "character U+0007 is not allowed")],
    ),
    (
        "python-tag",
        spec("description: !!python/object/apply:os.system [ls]\n"),
        [(f"{P}:1:14", "could not determine a constructor")],
    ),
    (
        "uv-project-without-lock",
        spec("", **{"pipelines/p/pyproject.toml": "[project]\nname='p'\n"}),
        [("pipelines/p/pyproject.toml:1:1", "uv project without uv.lock")],
    ),
    (
        "fastflow-unknown-key",
        {"fastflow.yaml": "setings: {}\n", **spec("")},
        [("fastflow.yaml:1:1", "unknown key 'setings'; did you mean 'settings'?")],
    ),
    (
        "fastflow-bad-default",
        {"fastflow.yaml": "defaults:\n  timeout: forever\n", **spec("")},
        [("fastflow.yaml:2:12", "defaults.timeout: 'forever' is not a duration")],
    ),
    (
        "fastflow-bad-setting",
        {"fastflow.yaml": "settings:\n  max_parallel_runs: 0\n", **spec("")},
        [
            (
                "fastflow.yaml:2:22",
                "settings.max_parallel_runs: input should be greater than or equal to 1",
            )
        ],
    ),
]


def run_validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["validate", str(root)])
    out = capsys.readouterr().out
    return code, out.splitlines()


@pytest.mark.parametrize(("files", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_repository_reports_each_problem_at_its_location(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Content],
    expected: list[tuple[str, str]],
) -> None:
    code, lines = run_validate(write_tree(tmp_path, files), capsys)
    assert code == 1
    assert len(lines) == len(expected), lines
    for line, (location, fragment) in zip(lines, expected, strict=True):
        assert line.startswith(location), line
        assert fragment in line, line


def test_there_are_at_least_forty_broken_repositories() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_file_over_size_limit_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_tree(tmp_path, spec(""))
    with open(root / "pipelines/p/data.bin", "wb") as handle:
        handle.truncate(50 * 2**20 + 1)  # sparse: the size is what counts
    code, lines = run_validate(root, capsys)
    assert code == 1
    assert lines == ["pipelines/p/data.bin:1:1: file is 50.0 MiB, over the 50.0 MiB limit"]


def test_plaintext_secret_value_never_appears_in_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = "canary-7f3a9c-do-not-print"
    root = write_tree(
        tmp_path,
        spec("", **{"pipelines/p/secrets.fernet.yaml": f"TOKEN: {canary}\nOTHER: [{canary}]\n"}),
    )
    code = main(["validate", str(root), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 1
    assert "TOKEN" in captured.out
    assert canary not in captured.out + captured.err


def test_all_problems_of_a_commit_are_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {
        P: "timeout: 5\nnetwork: host\nschedules:\n  - cron: nope\n",
        "pipelines/b/pipeline.yaml": "bogus: 1\n",
        "pipelines/b/main.py": "",
        **Q_OK,
    }
    code, lines = run_validate(write_tree(tmp_path, files), capsys)
    assert code == 1
    assert [line.split(": ", 1)[0] for line in lines] == [
        "pipelines/b/pipeline.yaml:1:1",
        "pipelines/p/pipeline.yaml:1:1",  # main.py is missing
        "pipelines/p/pipeline.yaml:1:10",
        "pipelines/p/pipeline.yaml:2:10",
        "pipelines/p/pipeline.yaml:4:11",
    ]


def test_valid_repository_exits_zero_through_the_real_command(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {**spec("schedules:\n  - cron: '@daily'\n"), **Q_OK})
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(root)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "ok: 2 pipeline(s) valid" in done.stderr


def test_invalid_repository_exits_one_through_the_real_command(tmp_path: Path) -> None:
    root = write_tree(tmp_path, spec("timeout: soon\n"))
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(root)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stdout.startswith(f"{P}:1:10: timeout: 'soon' is not a duration")
    assert "Traceback" not in done.stderr


def test_unknown_directory_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "is not a directory" in done.stderr
