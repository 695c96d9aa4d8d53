"""``fastflow run``: one pipeline, once, from one commit, with its log streamed to the terminal.

Loads the commit, materializes the pipeline's workspace, builds the request, and runs it through
the executor like a scheduled run would (trigger ``manual``), recording the run in the commit's
note unless told not to. A manual run's id includes the start time, so running the same commit
twice gives two runs.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.adapters import gitrepo, workspaces
from reconciler.core.commands import make_request
from reconciler.core.records import LOG_TAIL_LINES
from reconciler.core.runids import make_run_id
from reconciler.errors import InvalidInputError
from reconciler.executors.base import Executor
from reconciler.model.desired import DesiredState
from reconciler.model.runs import LogLine, RunOutcome, RunRequest, Trigger
from reconciler.model.secrets import SecretValue
from reconciler.runtime.recording import Recorder
from reconciler.runtime.runs import execute
from reconciler.runtime.unlocking import Unlocker
from reconciler.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    request: RunRequest | None  # None: the pipeline is invalid at this commit
    state: DesiredState
    git_dir: str
    secrets: dict[str, SecretValue] = field(default_factory=dict)


def prepare(settings: Settings, repo_path: str, rev: str, name: str) -> Prepared:
    """The request for ``name`` at ``rev``, or the state's problems when it is invalid there."""
    repo = gitrepo.open_repo(repo_path)
    commit = gitrepo.resolve_commit(repo, rev)
    state = gitrepo.load_commit(repo, commit)
    state, secrets = Unlocker().unlock(state, gitrepo.commit_reader(repo, str(commit.id)))
    if name in state.invalid:
        return Prepared(None, state, repo.path)
    pipeline = state.pipelines.get(name)
    if pipeline is None:
        known = ", ".join(sorted(state.pipelines)) or "none"
        raise InvalidInputError(
            f"no pipeline named {name!r} at {str(commit.id)[:12]} (known: {known})"
        )
    workspace = workspaces.materialize(repo, pipeline.tree_id, settings.workspaces)
    workspaces.touch(workspace)
    started = datetime.now(UTC)
    request = make_request(
        pipeline,
        run_id=make_run_id(name, Trigger.MANUAL, f"{commit.id}:{started.isoformat()}"),
        commit=str(commit.id),
        trigger=Trigger.MANUAL,
        workspace=str(workspace),
        default_image=settings.runner_image,
    )
    return Prepared(request, state, repo.path, secrets.get(name, {}))


async def run_once(
    executor: Executor,
    request: RunRequest,
    on_line: Callable[[LogLine], None],
    recorder: Recorder | None = None,
    secrets: Mapping[str, SecretValue] | None = None,
) -> RunOutcome:
    """Run and, with a ``recorder``, leave the same trace in Git as a scheduled run."""
    logger.info("run %s: %s at %s", request.run_id, request.pipeline, request.commit[:12])
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    def sink(line: LogLine) -> None:
        tail.append(line.text)
        on_line(line)

    if recorder is not None:
        await recorder.started(request)
    outcome = await execute(executor, request, sink, secrets)
    if recorder is not None:
        await recorder.finished(request, outcome, list(tail))
    return outcome
