"""The ``uv run`` command line and environment of a pipeline's container. Pure.

One command per dependency layout (ARCHITECTURE.md §1), all with the workspace at ``/app``:

* script:       ``uv run --no-project --script /app/<entry> <args>`` (PEP 723 inline metadata)
* project:      ``uv run --frozen --project /app python /app/<entry> <args>``; the environment is
                built in ``/tmp/venv`` because ``/app`` is read-only
* requirements: ``uv run --no-project --with-requirements /app/requirements.txt python /app/<entry>``

``network: none`` adds ``UV_OFFLINE=1``: such a pipeline can only use dependencies already in the
shared uv cache. ``FASTFLOW_*`` variables describe the run to the code.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.model.desired import Layout, Pipeline
from reconciler.model.runs import RunRequest, Trigger
from reconciler.model.specs import NetworkMode

APP_DIR = "/app"
UV_CACHE_DIR = "/uv-cache"
SITE_DIR = "/opt/fastflow/site"
START_MARKER = "\x1ffastflow:user-code-start "
CA_BUNDLE_PATH = "/etc/fastflow/ca-bundle.pem"

# Imported by Python before the entrypoint: tells the executor when the user's code starts.
SITECUSTOMIZE = f'''"""Fast-Flow: mark the moment the pipeline's own code starts (read and removed by the executor)."""
import os as _os
import sys as _sys
import time as _time

if _sys.argv and _sys.argv[0] == _os.environ.get("FASTFLOW_ENTRYPOINT"):
    _sys.stderr.write("{START_MARKER.encode("unicode_escape").decode()}%.6f\\n" % _time.time())
    _sys.stderr.flush()
'''


def build_command(pipeline: Pipeline, args: list[str] | None = None) -> list[str]:
    """The container command for ``pipeline``; ``args`` replaces the spec's args when given."""
    spec = pipeline.spec
    entry = f"{APP_DIR}/{spec.entrypoint}"
    python = ["--python", spec.python] if spec.python else []
    argv = list(spec.args if args is None else args)
    if pipeline.layout is Layout.PROJECT:
        return ["uv", "run", "--frozen", "--project", APP_DIR, *python, "python", entry, *argv]
    if pipeline.layout is Layout.REQUIREMENTS:
        reqs = f"{APP_DIR}/requirements.txt"
        return [
            "uv",
            "run",
            "--no-project",
            "--with-requirements",
            reqs,
            *python,
            "python",
            entry,
            *argv,
        ]
    return ["uv", "run", "--no-project", *python, "--script", entry, *argv]


def build_env(
    pipeline: Pipeline,
    *,
    run_id: str,
    commit: str,
    trigger: Trigger,
    attempt: int,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Plain (non-secret) environment: the spec's env, ``extra`` (a schedule's env), run facts."""
    env = {**pipeline.spec.env, **(extra or {})}
    env |= {
        "FASTFLOW_RUN_ID": run_id,
        "FASTFLOW_PIPELINE": pipeline.name,
        "FASTFLOW_COMMIT": commit,
        "FASTFLOW_TRIGGER": trigger.value,
        "FASTFLOW_ATTEMPT": str(attempt),
        "FASTFLOW_ENTRYPOINT": f"{APP_DIR}/{pipeline.spec.entrypoint}",
        "UV_CACHE_DIR": UV_CACHE_DIR,
        "UV_NO_PROGRESS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": SITE_DIR,
        "HOME": "/tmp",
    }
    if pipeline.layout is Layout.PROJECT:
        env |= {"UV_PROJECT_ENVIRONMENT": "/tmp/venv", "UV_LINK_MODE": "copy"}
    if pipeline.spec.network is NetworkMode.NONE:
        env["UV_OFFLINE"] = "1"
    return env


def make_request(
    pipeline: Pipeline,
    *,
    run_id: str,
    commit: str,
    trigger: Trigger,
    workspace: str,
    default_image: str,
    attempt: int = 1,
    args: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    scheduled_for: datetime | None = None,
    schedule: str | None = None,
) -> RunRequest:
    """Everything the executor needs for one attempt of ``pipeline`` at ``commit``."""
    spec = pipeline.spec
    return RunRequest(
        run_id=run_id,
        pipeline=pipeline.name,
        commit=commit,
        trigger=trigger,
        attempt=attempt,
        image=spec.image or default_image,
        command=build_command(pipeline, args),
        env=build_env(
            pipeline,
            run_id=run_id,
            commit=commit,
            trigger=trigger,
            attempt=attempt,
            extra=extra_env,
        ),
        workspace=workspace,
        tree_id=pipeline.tree_id,
        resources=spec.resources,
        network=spec.network,
        timeout_s=spec.timeout.total_seconds(),
        scheduled_for=scheduled_for,
        schedule=schedule,
    )
