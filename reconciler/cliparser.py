"""The ``fastflow`` command line: every subcommand, its arguments and its help text (ARCHITECTURE.md §7).

Environment defaults (``FASTFLOW_*``) are read here so ``--help`` shows what applies.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastflow", description="Git-native GitOps reconciler for scheduled Python pipelines."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser(
        "validate",
        help="check a desired-state repository",
        description=(
            "Check every pipeline.yaml, fastflow.yaml and secrets file; print each problem as "
            "path:line:col: message. Exit 1 when there is any problem."
        ),
    )
    validate.add_argument("dir", nargs="?", default=".", help="repository directory (default: .)")
    validate.add_argument(
        "--rev",
        help="validate this commit of the Git repository at DIR instead of the files on disk",
    )
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.add_argument(
        "--no-decrypt",
        action="store_true",
        help=(
            "do not try to decrypt secrets (by default each kind is decrypted when its keys are configured: "
            "SOPS_AGE_KEY_FILE / SOPS_AGE_KEY for SOPS, FASTFLOW_FERNET_KEYS for Fernet)"
        ),
    )

    plan = sub.add_parser(
        "plan",
        help="what applying HEAD over BASE would change",
        description=(
            "Compare two commits: pipelines added, removed and changed, schedule changes with their "
            "next fire times, runs per day, secret names, and HEAD's validation problems."
        ),
    )
    plan.add_argument("base", help="the applied commit (e.g. origin/main)")
    plan.add_argument("head", nargs="?", default="HEAD", help="the proposed commit (default: HEAD)")
    plan.add_argument("--repo", default=".", help="Git repository (default: .)")
    plan.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    plan.add_argument(
        "--at", type=_instant, help="compute fire times from this ISO-8601 instant (default: now)"
    )

    run = sub.add_parser(
        "run",
        help="run one pipeline once, now",
        description=(
            "Run PIPELINE once from a commit (default HEAD) in a throw-away container, stream its log "
            "(stdout to stdout, stderr to stderr), and exit 0 when it succeeded, 1 otherwise."
        ),
    )
    run.add_argument("pipeline")
    run.add_argument("--repo", default=".", help="Git repository (default: .)")
    run.add_argument("--rev", default="HEAD", help="commit to run (default: HEAD)")
    run.add_argument(
        "--data", type=Path, help="data directory (workspaces, uv cache); env FASTFLOW_DATA"
    )
    run.add_argument(
        "--docker-host", help="Docker API, normally the socket proxy; env FASTFLOW_DOCKER_HOST"
    )
    run.add_argument(
        "--ca-bundle",
        type=Path,
        help="CA bundle mounted into the container; env FASTFLOW_CA_BUNDLE",
    )
    run.add_argument(
        "--allow-direct-socket",
        action="store_true",
        default=None,
        help="allow a unix:// Docker host (bypasses the proxy)",
    )
    run.add_argument("--format", choices=("text", "json"), default="text", help="outcome format")
    run.add_argument(
        "--no-record", action="store_true", help="do not write the run to the commit's note"
    )

    serve = sub.add_parser(
        "serve",
        help="run the reconciler and the status site",
        description=(
            "Watch (local path) or fetch (URL) the repository, validate every branch head, apply the tracked "
            "branch, run pipelines on schedule, on push, after others and on Fastflow-Run trailers, and serve "
            "the status site. Settings also come from FASTFLOW_* variables (see README)."
        ),
    )
    serve.add_argument(
        "--repo", default=os.environ.get("FASTFLOW_REPO"), help="URL or path; env FASTFLOW_REPO"
    )
    serve.add_argument("--branch", default=os.environ.get("FASTFLOW_BRANCH", "main"))
    serve.add_argument("--data", type=Path, help="data directory; env FASTFLOW_DATA")
    serve.add_argument("--listen", default=os.environ.get("FASTFLOW_LISTEN", "127.0.0.1:8080"))
    serve.add_argument(
        "--interval",
        type=float,
        default=float(os.environ.get("FASTFLOW_INTERVAL", "60")),
        help="seconds between fetches (default 60); env FASTFLOW_INTERVAL",
    )
    serve.add_argument(
        "--docker-host", help="Docker API (the socket proxy); env FASTFLOW_DOCKER_HOST"
    )
    serve.add_argument(
        "--ca-bundle", type=Path, help="CA bundle for runner containers; env FASTFLOW_CA_BUNDLE"
    )
    serve.add_argument("--instance", help="io.fastflow.instance label value; env FASTFLOW_INSTANCE")
    serve.add_argument("--allow-direct-socket", action="store_true", default=None)
    serve.add_argument("--no-push-notes", action="store_true", help="keep notes in the mirror only")

    secrets = sub.add_parser(
        "secrets",
        help="keys, encryption, rotation and checks of secrets",
        description=(
            "Work with SOPS (age) and Fernet secrets. Values are read from arguments or stdin and never printed "
            "in plain text."
        ),
    )
    verbs = secrets.add_subparsers(dest="verb", required=True, metavar="VERB")
    keygen = verbs.add_parser(
        "keygen", help="print a new Fernet key (or, with --age, a new age identity)"
    )
    keygen.add_argument("--age", action="store_true", help="make an age identity with age-keygen")
    encrypt = verbs.add_parser(
        "encrypt", help="encrypt a value (Fernet) or a file (Fernet or SOPS)"
    )
    kind = encrypt.add_mutually_exclusive_group(required=True)
    kind.add_argument("--fernet", action="store_true", help="with FASTFLOW_FERNET_KEYS' newest key")
    kind.add_argument(
        "--sops", action="store_true", help="through `sops encrypt`, honouring .sops.yaml"
    )
    encrypt.add_argument("value", nargs="?", help="the value (Fernet only; default: read stdin)")
    encrypt.add_argument("--file", type=Path, help="encrypt this YAML KEY: value file in place")
    rotate = verbs.add_parser(
        "rotate", help="re-encrypt Fernet files with the newest key; update SOPS recipients"
    )
    rotate.add_argument("--repo", type=Path, default=Path("."))
    rotate.add_argument(
        "--new-data-key",
        action="store_true",
        help="SOPS: also make a new data key (sops rotate): after removing a recipient or a leak",
    )
    check = verbs.add_parser(
        "check", help="recipients match .sops.yaml; every secret decrypts with the keys at hand"
    )
    check.add_argument("dir", nargs="?", type=Path, default=Path("."))

    demo = sub.add_parser(
        "demo",
        help="serve the example repository and run its pipelines",
        description=(
            "Create a local bare repository from examples/repo, start the reconciler and the status site on it, "
            "run the example pipelines at once, and print the URL and a git clone/push line to try a change. "
            "Needs the rig from `bash scripts/setup` (Docker engine, socket proxy, runner image)."
        ),
    )
    demo.add_argument("--listen", default="127.0.0.1:8080")
    demo.add_argument(
        "--data",
        type=Path,
        help="data directory (default: FASTFLOW_DATA or ~/.local/share/fastflow)",
    )

    status = sub.add_parser(
        "status",
        help="commit statuses and runs recorded on a commit",
        description=(
            "Show the combined state, each status context and the runs recorded in the notes of REV. "
            "Exit 1 when the combined state is failure."
        ),
    )
    status.add_argument("rev", nargs="?", default="HEAD")
    status.add_argument("--repo", default=".", help="Git repository (default: .)")
    status.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time such as 2026-03-27T12:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
