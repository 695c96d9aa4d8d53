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
from reconciler.adapters.fstree import directory_reader, load_directory
from reconciler.adapters.gitnotes import NoteStore
from reconciler.cliparser import build_parser
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
from reconciler.runtime.unlocking import Kinds, Unlocker
from reconciler.settings import load_settings

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        read = gitrepo.commit_reader(repo, state.commit)
    else:
        state = load_directory(args.dir)
        read = directory_reader(args.dir)
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
