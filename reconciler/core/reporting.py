"""Render plans and problems for people: plain text (a terminal) and Markdown (a PR comment).

JSON output is the models' own ``model_dump_json``; these renderers never see a secret value
(plans carry secret *names* only).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.model.notes import RunLine, StatusLine, StatusState
from reconciler.model.plans import ChangeKind, FieldChange, PipelineChange, Plan, ScheduleView
from reconciler.model.problems import Problem

_SIGN = {
    ChangeKind.ADDED: "+",
    ChangeKind.REMOVED: "-",
    ChangeKind.CHANGED: "~",
    ChangeKind.INVALID: "!",
}


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "(none)"


def render_problems(problems: list[Problem] | tuple[Problem, ...]) -> str:
    return "".join(f"{p}\n" for p in problems)


def render_plan_text(plan: Plan) -> str:
    lines = [f"Plan {_short(plan.base)} -> {_short(plan.head)}: {_summary(plan)}"]
    for change in plan.changes:
        lines.append("")
        lines.append(f"{_SIGN[change.kind]} {change.name} ({change.kind.value})")
        lines += [f"    {line}" for line in _change_lines(change)]
    for field in plan.settings_changes:
        lines.append(f"~ {_field_line(field)}")
    if plan.problems:
        lines.append("")
        lines.append(f"{len(plan.problems)} validation problem(s) at {_short(plan.head)}:")
        lines += [f"  {p}" for p in plan.problems]
    return "\n".join(lines) + "\n"


def _summary(plan: Plan) -> str:
    counts = {kind: sum(1 for c in plan.changes if c.kind is kind) for kind in ChangeKind}
    parts = [f"{counts[k]} {k.value}" for k in ChangeKind if counts[k]]
    parts.append(f"{plan.unchanged} unchanged")
    return ", ".join(parts)


def _field_line(field: FieldChange) -> str:
    return f"{field.field}: {_value(field.before)} -> {_value(field.after)}"


def _change_lines(change: PipelineChange) -> list[str]:
    lines = [_field_line(f) for f in change.fields]
    for schedule in change.schedules:
        lines.append(f"schedule {schedule.key}:")
        lines += _schedule_lines("before", schedule.before) + _schedule_lines(
            "after ", schedule.after
        )
    if change.runs_per_day_before != change.runs_per_day_after:
        lines.append(
            f"runs per day: {change.runs_per_day_before:g} -> {change.runs_per_day_after:g}"
        )
    for label, names in (
        ("added", change.secrets_added),
        ("removed", change.secrets_removed),
        ("changed", change.secrets_changed),
    ):
        if names:
            lines.append(f"secrets {label}: {', '.join(names)}")
    lines += [str(p) for p in change.problems]
    return lines


def _schedule_lines(label: str, view: ScheduleView | None) -> list[str]:
    if view is None:
        return [f"  {label}: (none)"]
    head = f"  {label}: {view.expression} [{view.timezone}], {view.runs_per_day:g}/day, next:"
    return [head] + [f"      {tick}" for tick in view.next_ticks_local]


def render_plan_markdown(plan: Plan) -> str:
    lines = [
        f"### Fast-Flow plan `{_short(plan.base)}` → `{_short(plan.head)}`",
        "",
        _summary(plan),
        "",
    ]
    if plan.changes:
        lines += ["| | pipeline | change | runs/day |", "|---|---|---|---|"]
        for c in plan.changes:
            lines.append(
                f"| {_SIGN[c.kind]} | `{c.name}` | {c.kind.value} | {c.runs_per_day_before:g} → {c.runs_per_day_after:g} |"
            )
    for change in plan.changes:
        details = _change_lines(change)
        if details:
            lines += [
                "",
                f"<details><summary><code>{change.name}</code></summary>",
                "",
                "```",
                *details,
                "```",
                "</details>",
            ]
    if plan.settings_changes:
        lines += ["", "**Settings**", "", *[f"- `{_field_line(f)}`" for f in plan.settings_changes]]
    if plan.problems:
        lines += [
            "",
            f"**{len(plan.problems)} validation problem(s)**",
            "",
            "```",
            *[str(p) for p in plan.problems],
            "```",
        ]
    return "\n".join(lines) + "\n"


def _when(moment: object) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if hasattr(moment, "strftime") else "-"


def render_status_text(
    commit: str,
    summary: str,
    combined: StatusState,
    statuses: list[StatusLine],
    runs: list[RunLine],
) -> str:
    """``fastflow status``: the combined state, every context, and the runs on one commit."""
    lines = [f"commit {commit[:12]}  {summary}", f"state: {combined.value}"]
    if statuses:
        width = max(len(s.context) for s in statuses)
        lines.append("")
        for status in statuses:
            lines.append(
                f"  {status.context:<{width}}  {status.state.value:<7}  {_when(status.at)}  {status.description}"
            )
    if runs:
        lines += ["", "runs (newest first):"]
        for run in runs:
            exit_text = f"exit {run.exit_code}" if run.exit_code is not None else ""
            took = f"{run.duration_s:.2f}s" if run.duration_s is not None else ""
            fields = [
                _when(run.at),
                run.pipeline,
                run.trigger,
                f"attempt {run.attempt}",
                run.state,
                exit_text,
                took,
                run.run_id,
            ]
            lines.append("  " + "  ".join(f for f in fields if f))
    if not statuses and not runs:
        lines.append("(nothing recorded on this commit)")
    return "\n".join(lines) + "\n"
