"""The ``fastflow`` command: the composition root (argument parsing, logging, wiring).

Exit codes: 0 ok; 1 invalid desired state (or a failed run); 2 usage error, including a
revision or directory that does not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from reconciler import demo, serving
from reconciler.adapters import gitrepo
from reconciler.adapters.forge import StatusPoster
from reconciler.adapters.fstree import load_directory, read_pipeline_file
from reconciler.adapters.gitnotes import NoteStore
from reconciler.core.loading import Loader
from reconciler.core.notes import combined_state, current_statuses, parse_lines, runs_of
from reconciler.core.planning import make_plan
from reconciler.core.reporting import (
    render_plan_markdown,
    render_plan_text,
    render_problems,
    render_status_text,
)
from reconciler.errors import InvalidInputError, LaunchError, SecretError
from reconciler.model.desired import DesiredState
from reconciler.model.runs import LogLine, RunOutcome, RunState, Stream
from reconciler.runtime import oneshot, secrettools
from reconciler.runtime.app import ServeOptions
from reconciler.runtime.recording import Recorder
from reconciler.runtime.unlocking import Kinds, ReadSecretFile, Unlocker
from reconciler.settings import load_settings

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "plan":
            return _plan(args)
        if args.command == "run":
            return _run(args)
        if args.command == "status":
            return _status(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "secrets":
            return _secrets(args)
    except InvalidInputError as exc:
        print(f"fastflow: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SecretError as exc:
        print(f"fastflow: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except FileNotFoundError as exc:
        print(f"fastflow: no such file: {exc.filename}", file=sys.stderr)
        return EXIT_USAGE
    raise AssertionError(f"unhandled command {args.command!r}")


def _validate(args: argparse.Namespace) -> int:
    kinds = Kinds.configured()
    if args.rev:
        repo = gitrepo.open_repo(args.dir)
        state = gitrepo.load_commit(repo, gitrepo.resolve_commit(repo, args.rev))
        read: ReadSecretFile = lambda p, f: gitrepo.read_file(repo, p.tree_id, f)  # noqa: E731
    else:
        state = load_directory(args.dir)
        read = lambda p, f: read_pipeline_file(args.dir, p.name, f)  # noqa: E731
    if not args.no_decrypt and (kinds.sops or kinds.fernet):
        state, _ = Unlocker(kinds=kinds).unlock(state, read)
    if args.format == "json":
        print(json.dumps(_validation_json(state), indent=2))
    else:
        sys.stdout.write(render_problems(state.problems))
        print(_validation_summary(state), file=sys.stderr)
    return EXIT_OK if state.ok else EXIT_INVALID


def _validation_summary(state: DesiredState) -> str:
    valid = len(state.pipelines)
    if state.ok:
        return f"ok: {valid} pipeline(s) valid"
    return (
        f"{len(state.problems)} problem(s); {len(state.invalid)} pipeline(s) invalid, {valid} valid"
    )


def _validation_json(state: DesiredState) -> dict[str, object]:
    return {
        "ok": state.ok,
        "commit": state.commit,
        "pipelines": sorted(state.pipelines),
        "invalid": sorted(state.invalid),
        "problems": [p.model_dump(mode="json") | {"text": str(p)} for p in state.problems],
    }


def _plan(args: argparse.Namespace) -> int:
    repo = gitrepo.open_repo(args.repo)
    base_commit = gitrepo.resolve_commit(repo, args.base)
    head_commit = gitrepo.resolve_commit(repo, args.head)
    loader = Loader()
    base = gitrepo.load_commit(repo, base_commit, loader)
    head = gitrepo.load_commit(repo, head_commit, loader)
    plan = make_plan(base, head, args.at or datetime.now(UTC))
    if args.format == "json":
        print(plan.model_dump_json(indent=2))
    elif args.format == "markdown":
        sys.stdout.write(render_plan_markdown(plan))
    else:
        sys.stdout.write(render_plan_text(plan))
    return EXIT_OK if head.ok else EXIT_INVALID


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(
        data_dir=args.data,
        docker_host=args.docker_host,
        ca_bundle=args.ca_bundle,
        allow_direct_socket=args.allow_direct_socket,
    )
    prepared = oneshot.prepare(settings, args.repo, args.rev, args.pipeline)
    request, state = prepared.request, prepared.state
    if request is None:
        sys.stderr.write(render_problems(state.invalid[args.pipeline]))
        print(f"fastflow: pipeline {args.pipeline!r} is invalid at this commit", file=sys.stderr)
        return EXIT_INVALID
    try:
        executor = serving.docker_executor(settings, f"{settings.instance}-cli")
    except LaunchError as exc:
        print(f"fastflow: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        recorder = None
        if not args.no_record:
            store = NoteStore(prepared.git_dir, max_runs=state.settings.note_max_runs)
            poster = StatusPoster(settings.forge) if settings.forge else None
            recorder = Recorder(store, poster, settings.site_url)
        outcome = asyncio.run(
            oneshot.run_once(executor, request, _print_line, recorder, prepared.secrets)
        )
    except KeyboardInterrupt:
        print(f"fastflow: run {request.run_id} cancelled", file=sys.stderr)
        return 130
    finally:
        executor.close()
    if args.format == "json":
        print(outcome.model_dump_json(indent=2))
    else:
        print(_outcome_line(outcome), file=sys.stderr)
    return EXIT_OK if outcome.state is RunState.SUCCEEDED else EXIT_INVALID


def _print_line(line: LogLine) -> None:
    target = sys.stdout if line.stream is Stream.STDOUT else sys.stderr
    target.write(line.text + "\n")
    target.flush()


def _outcome_line(outcome: RunOutcome) -> str:
    parts = [f"run {outcome.run_id}: {outcome.state.value}"]
    if outcome.exit_code is not None:
        parts.append(f"exit {outcome.exit_code}")
    if outcome.duration_s is not None:
        parts.append(f"{outcome.duration_s:.2f}s")
    if outcome.setup_s is not None:
        parts.append(f"setup {outcome.setup_s:.2f}s")
    if outcome.uv_version:
        parts.append(f"uv {outcome.uv_version}")
    text = ", ".join(parts)
    return (
        f"{text}: {outcome.message}"
        if outcome.message and outcome.state is not RunState.SUCCEEDED
        else text
    )


def _status(args: argparse.Namespace) -> int:
    repo = gitrepo.open_repo(args.repo)
    commit = gitrepo.resolve_commit(repo, args.rev)
    lines = parse_lines(NoteStore(repo.path).read(str(commit.id)))
    statuses = current_statuses(lines)
    combined = combined_state(statuses.values())
    runs = runs_of(lines)
    info = gitrepo.describe_commit(commit)
    if args.format == "json":
        document = {
            "commit": info.id,
            "summary": info.summary,
            "state": combined.value,
            "statuses": [s.model_dump(mode="json") for s in statuses.values()],
            "runs": [r.model_dump(mode="json") for r in runs],
        }
        print(json.dumps(document, indent=2))
    else:
        sys.stdout.write(
            render_status_text(info.id, info.summary, combined, list(statuses.values()), runs)
        )
    return EXIT_INVALID if combined.value == "failure" else EXIT_OK


def _secrets(args: argparse.Namespace) -> int:
    if args.verb == "keygen":
        sys.stdout.write(
            secrettools.age_keygen() if args.age else secrettools.fernet_keygen() + "\n"
        )
        return EXIT_OK
    if args.verb == "encrypt":
        return _encrypt(args)
    if args.verb == "rotate":
        done = []
        if any(secrettools.secret_files(args.repo, "secrets.fernet.yaml")):
            done += secrettools.rotate_fernet(args.repo)
        done += secrettools.rotate_sops(args.repo, new_data_key=args.new_data_key)
        for item in done:
            print(f"{item.path}: {item.what}")
        if not args.new_data_key and any(secrettools.secret_files(args.repo, "secrets.sops.yaml")):
            print(
                "note: SOPS values keep their data key; after removing a recipient use --new-data-key",
                file=sys.stderr,
            )
        return EXIT_OK
    problems = secrettools.check(args.dir)
    for problem in problems:
        print(problem)
    print(
        f"{len(problems)} problem(s)" if problems else "ok: every secret decrypts", file=sys.stderr
    )
    return EXIT_INVALID if problems else EXIT_OK


def _encrypt(args: argparse.Namespace) -> int:
    if args.file is not None:
        if args.sops:
            secrettools.encrypt_sops_file(args.file)
            print(f"{args.file}: encrypted with sops", file=sys.stderr)
        else:
            count = secrettools.encrypt_fernet_file(args.file)
            print(f"{args.file}: {count} value(s) encrypted with Fernet", file=sys.stderr)
        return EXIT_OK
    if args.sops:
        raise InvalidInputError("sops encrypts files: use --sops --file secrets.sops.yaml")
    value = args.value if args.value is not None else sys.stdin.read().rstrip("\n")
    print(secrettools.encrypt_value(value))
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    if not args.repo:
        raise InvalidInputError("--repo (or FASTFLOW_REPO) is required: a Git URL or a local path")
    settings = load_settings(
        data_dir=args.data,
        docker_host=args.docker_host,
        ca_bundle=args.ca_bundle,
        instance=args.instance,
        allow_direct_socket=args.allow_direct_socket,
    )
    try:
        listen = serving.Listen.parse(args.listen)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    options = ServeOptions(
        source=args.repo,
        branch=args.branch,
        interval_s=args.interval,
        webhook_secret=os.environ.get("FASTFLOW_WEBHOOK_SECRET") or None,
        push_notes=not args.no_push_notes,
    )
    executor = serving.docker_executor(settings)
    try:
        asyncio.run(
            serving.serve(
                options, settings, executor, listen, token=os.environ.get("FASTFLOW_TOKEN") or None
            )
        )
    finally:
        executor.close()
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    bundle = (
        os.environ.get("FASTFLOW_CA_BUNDLE")
        or os.environ.get("SSL_CERT_FILE")
        or "/etc/ssl/certs/ca-certificates.crt"
    )
    settings = load_settings(
        data_dir=args.data,
        ca_bundle=Path(bundle)
        if Path(bundle).is_file()
        else None,  # downloads may pass a TLS-intercepting proxy
        instance=os.environ.get("FASTFLOW_INSTANCE") or "demo",
    )
    try:
        listen = serving.Listen.parse(args.listen)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    asyncio.run(demo.run_demo(settings, listen))
    return EXIT_OK
