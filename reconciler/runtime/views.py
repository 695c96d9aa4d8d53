"""JSON views of the reconciler's state for the status site and API. No env values, no secrets,
no credentials: pipelines show their schedule, policy fields and secret *names* only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pygit2

from reconciler.core.notes import combined_state, current_statuses, parse_lines
from reconciler.core.scheduling import describe_schedule, next_ticks
from reconciler.core.ticking import schedule_key
from reconciler.model.notes import RunLine
from reconciler.runtime.app import App

NEXT_TICKS = 3


def source_view(app: App) -> dict[str, Any]:
    rec = app.reconciler
    commit = None
    if rec.applied_commit and rec.applied_commit in app.source.repo:
        item = app.source.repo[rec.applied_commit]
        if isinstance(item, pygit2.Commit):
            commit = {
                "id": rec.applied_commit,
                "summary": item.message.split("\n", 1)[0],
                "author": item.author.name,
                "time": datetime.fromtimestamp(item.commit_time, UTC).isoformat(),
            }
    last = rec.last_pass
    return {
        "repo": app.source.display,
        "branch": rec.branch,
        "branch_missing": rec.branch_missing,
        "applied": commit,
        "last_fetch": datetime.fromtimestamp(rec.last_fetch, UTC).isoformat()
        if rec.last_fetch
        else None,
        "last_pass": {"error": last.error, "duration_s": round(last.duration_s, 4)}
        if last
        else None,
        "healthy": bool(last and last.fetched and not rec.branch_missing),
        "problems": [
            p.model_dump(mode="json") | {"text": str(p)}
            for p in (rec.applied_state.problems if rec.applied_state else ())
        ],
        # the newest tracked commit that applied nothing (a broken fastflow.yaml or shared
        # secrets file): what to fix, while the applied commit above keeps running
        "rejected": {
            "commit": rec.rejected[0],
            "problems": [
                p.model_dump(mode="json") | {"text": str(p)} for p in rec.rejected[1].problems
            ],
        }
        if rec.rejected
        else None,
        "queue_length": app.supervisor.queue_length,
        "started_at": datetime.fromtimestamp(app.started_at, UTC).isoformat(),
    }


def pipeline_views(app: App) -> list[dict[str, Any]]:
    now = app.clock.now()
    state = app.reconciler.applied_state
    invalid = state.invalid if state else {}
    recent = _recent_by_pipeline(app)
    views = []
    for name in sorted(set(app.applied) | set(invalid)):
        applied = app.applied.get(name)
        view: dict[str, Any] = {
            "name": name,
            "quarantined": name in invalid,
            "problems": [str(p) for p in invalid.get(name, ())],
        }
        if applied is not None:
            spec = applied.pipeline.spec
            view |= {
                "description": spec.description,
                "commit": applied.commit,
                "on_push": spec.on_push,
                "suspend": spec.suspend,
                "concurrency": spec.concurrency.value,
                "after": [t.model_dump(mode="json") for t in spec.after],
                "secrets": list(applied.pipeline.granted_secrets),
                "schedules": [
                    {
                        "key": schedule_key(s, i),
                        "expression": s.expression,
                        "timezone": s.timezone,
                        "words": describe_schedule(s),
                        "next": [t.isoformat() for t in next_ticks(s, now, NEXT_TICKS)]
                        if not spec.suspend
                        else [],
                    }
                    for i, s in enumerate(spec.schedules)
                ],
            }
        view["last_runs"] = recent.get(name, [])[:20]
        views.append(view)
    return views


def _line_view(line: RunLine) -> dict[str, Any]:
    extra = line.model_extra or {}
    return {
        "run_id": line.run_id,
        "pipeline": line.pipeline,
        "trigger": line.trigger,
        "attempt": line.attempt,
        "state": line.state,
        "exit_code": line.exit_code,
        "duration_s": line.duration_s,
        "setup_s": line.setup_s,
        "scheduled_for": line.scheduled_for.isoformat() if line.scheduled_for else None,
        "started_at": line.started_at.isoformat() if line.started_at else None,
        "finished_at": line.finished_at.isoformat() if line.finished_at else None,
        "message": line.message,
        "schedule": extra.get("schedule"),
        "peak_memory_bytes": extra.get("peak_memory_bytes"),
        "memory_limit_bytes": extra.get("memory_limit_bytes"),
        "cpu_seconds": extra.get("cpu_seconds"),
    }


def _recent_by_pipeline(app: App) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in run_list(app, None, 2000):
        grouped.setdefault(str(item["pipeline"]), []).append(item)
    return grouped


def run_list(app: App, pipeline: str | None, limit: int) -> list[dict[str, Any]]:
    """Live and recent runs of this process first, then the history from the notes."""
    seen: set[str] = set()
    found: list[dict[str, Any]] = []
    for run in app.supervisor.runs():
        if pipeline in (None, run.intent.pipeline) and run.run_id not in seen:
            seen.add(run.run_id)
            found.append(run.view())
    for name, lines in app.history.items():
        if pipeline not in (None, name):
            continue
        for line in lines:
            if line.run_id not in seen:
                seen.add(line.run_id)
                found.append(_line_view(line))
    found.sort(
        key=lambda r: str(r.get("finished_at") or r.get("started_at") or r.get("queued_at") or ""),
        reverse=True,
    )
    live = [r for r in found if r["state"] in ("queued", "running")]
    return (live + [r for r in found if r["state"] not in ("queued", "running")])[:limit]


def run_detail(app: App, run_id: str) -> dict[str, Any] | None:
    run = app.supervisor.find(run_id)
    if run is not None:
        return run.view()
    for lines in app.history.values():
        for line in lines:
            if line.run_id == run_id:
                return _line_view(line) | {"log_tail": line.log_tail}
    return None


def run_log(app: App, run: dict[str, Any], attempt: int | None) -> list[dict[str, str]]:
    """The archived (masked) log of one attempt, both streams in time order."""
    lines = app.archive.read(
        str(run["pipeline"]), str(run["run_id"]), attempt or int(run.get("attempt") or 1)
    )
    return [{"at": line.at, "stream": line.stream.value, "text": line.text} for line in lines]


def recent_commits(app: App, count: int) -> list[dict[str, Any]]:
    """The newest commits of the tracked branch with their current statuses (from the notes)."""
    repo = app.source.repo
    head = app.source.heads().get(app.reconciler.branch) or app.reconciler.applied_commit
    if not head or head not in repo:
        return []
    found = []
    for commit in repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL):
        statuses = current_statuses(parse_lines(app.store.read(str(commit.id))))
        found.append(
            {
                "id": str(commit.id),
                "summary": commit.message.split("\n", 1)[0],
                "author": commit.author.name,
                "time": datetime.fromtimestamp(commit.commit_time, UTC).isoformat(),
                "state": combined_state(statuses.values()).value if statuses else None,
                "statuses": [
                    {"context": s.context, "state": s.state.value, "description": s.description}
                    for s in statuses.values()
                ],
                "applied": str(commit.id) == app.reconciler.applied_commit,
            }
        )
        if len(found) >= count:
            break
    return found
