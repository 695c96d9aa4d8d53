"""Compare an applied desired state with a new one: ``make_plan(base, head, now)``. Pure.

Pipelines whose tree id and repo config are unchanged are skipped without looking at their
specs, so a plan over thousands of pipelines where one changed costs O(changed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.core.scheduling import format_tick, next_ticks, runs_per_day
from reconciler.model.desired import DesiredState, Pipeline
from reconciler.model.plans import (
    ChangeKind,
    FieldChange,
    PipelineChange,
    Plan,
    ScheduleChange,
    ScheduleView,
)
from reconciler.model.specs import Schedule

NEXT_TICKS = 5


def make_plan(base: DesiredState, head: DesiredState, now: datetime) -> Plan:
    same_config = base.config_id == head.config_id
    changes: list[PipelineChange] = []
    unchanged = 0
    for name in sorted(base.pipelines.keys() | head.pipelines.keys() | head.invalid.keys()):
        old, new = base.pipelines.get(name), head.pipelines.get(name)
        if old is new and same_config and name not in head.invalid:
            unchanged += 1  # the same object: a Loader reused it because nothing changed
            continue
        if name in head.invalid:
            changes.append(
                PipelineChange(
                    name=name, kind=ChangeKind.INVALID, problems=list(head.invalid[name])
                )
            )
        elif old is None and new is not None:
            changes.append(_describe(name, ChangeKind.ADDED, None, new, now))
        elif new is None and old is not None:
            changes.append(_describe(name, ChangeKind.REMOVED, old, None, now))
        elif old is not None and new is not None:
            if (
                same_config
                and old.tree_id == new.tree_id
                and old.shared_secrets == new.shared_secrets
            ):
                unchanged += 1
                continue
            change = _describe(name, ChangeKind.CHANGED, old, new, now)
            if (
                change.fields
                or change.schedules
                or change.secrets_added
                or change.secrets_removed
                or change.secrets_changed
            ):
                changes.append(change)
            else:
                unchanged += 1
    settings = diff_fields(
        base.settings.model_dump(mode="json"), head.settings.model_dump(mode="json"), "settings"
    )
    return Plan(
        base=base.commit,
        head=head.commit,
        computed_at=now,
        changes=changes,
        unchanged=unchanged,
        settings_changes=settings,
        problems=list(head.problems),
    )


def _describe(
    name: str, kind: ChangeKind, old: Pipeline | None, new: Pipeline | None, now: datetime
) -> PipelineChange:
    before = old.spec.model_dump(mode="json", exclude={"schedules"}) if old else {}
    after = new.spec.model_dump(mode="json", exclude={"schedules"}) if new else {}
    old_secrets = old.received_digests if old else {}
    new_secrets = new.received_digests if new else {}
    old_schedules = _keyed(old.spec.schedules) if old else {}
    new_schedules = _keyed(new.spec.schedules) if new else {}
    return PipelineChange(
        name=name,
        kind=kind,
        fields=diff_fields(before, after) if kind is ChangeKind.CHANGED else [],
        schedules=_schedule_changes(old_schedules, new_schedules, now),
        runs_per_day_before=_per_day(old, now),
        runs_per_day_after=_per_day(new, now),
        secrets_added=sorted(set(new_secrets) - set(old_secrets)),
        secrets_removed=sorted(set(old_secrets) - set(new_secrets)),
        secrets_changed=sorted(
            k for k in set(old_secrets) & set(new_secrets) if old_secrets[k] != new_secrets[k]
        ),
    )


def _per_day(pipeline: Pipeline | None, now: datetime) -> float:
    if pipeline is None or pipeline.spec.suspend:
        return 0.0
    return round(sum(runs_per_day(s, now) for s in pipeline.spec.schedules), 2)


def _keyed(schedules: list[Schedule]) -> dict[str, Schedule]:
    return {s.name or f"#{i}": s for i, s in enumerate(schedules)}


def _schedule_changes(
    old: dict[str, Schedule], new: dict[str, Schedule], now: datetime
) -> list[ScheduleChange]:
    found = []
    for key in sorted(set(old) | set(new), key=lambda k: (k.startswith("#"), k)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        found.append(
            ScheduleChange(
                key=key,
                before=_view(before, now) if before else None,
                after=_view(after, now) if after else None,
            )
        )
    return found


def _view(schedule: Schedule, now: datetime) -> ScheduleView:
    ticks = next_ticks(schedule, now, NEXT_TICKS)
    return ScheduleView(
        expression=schedule.expression,
        timezone=schedule.timezone,
        next_ticks=ticks,
        next_ticks_local=[format_tick(t, schedule.timezone) for t in ticks],
        runs_per_day=round(runs_per_day(schedule, now), 2),
    )


def diff_fields(
    before: dict[str, Any], after: dict[str, Any], prefix: str = ""
) -> list[FieldChange]:
    """Field-by-field differences of two JSON-like mappings, nested mappings flattened with dots."""
    changes = []
    for key in sorted(set(before) | set(after)):
        path = f"{prefix}.{key}" if prefix else key
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += diff_fields(old, new, path)
        elif old != new:
            changes.append(FieldChange(field=path, before=old, after=new))
    return changes
