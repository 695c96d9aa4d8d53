"""Which ticks of a schedule run now, which are recorded as missed, and when to wake next. Pure.

For one schedule, the candidates are its ticks in ``(last_seen, now]``. A tick older than the
pipeline's ``starting_deadline`` is never run (it is missed). Of the others, ``missed`` decides:

* ``skip``   : run only the newest, and only if it is on time (within ``ON_TIME``: the loop was not
               down, it just woke up); older ones are missed.
* ``latest`` : run the newest; older ones are missed.
* ``all``    : run the newest ``max_catchup``, oldest first; the rest are missed.

A suspended pipeline runs nothing and records nothing. When a schedule's definition changes, its
``last_seen`` restarts at the moment of the change, so a new cron never replays ticks from before
it existed (and a tick that already ran keeps its run id, so it cannot run twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.core.scheduling import iter_ticks
from reconciler.model.specs import MissedPolicy, PipelineSpec, Schedule

ON_TIME = timedelta(seconds=60)
MAX_CANDIDATES = 10_000


@dataclass(frozen=True)
class Decision:
    run: list[datetime] = field(default_factory=list)  # oldest first
    missed: list[datetime] = field(default_factory=list)  # capped sample, oldest first
    missed_count: int = 0
    last_seen: datetime | None = None


def schedule_key(schedule: Schedule, index: int) -> str:
    return schedule.name or f"#{index}"


def decide(spec: PipelineSpec, schedule: Schedule, last_seen: datetime, now: datetime) -> Decision:
    """What to do with ``schedule``'s ticks in ``(last_seen, now]``."""
    if spec.suspend:
        return Decision(last_seen=now)
    candidates: list[datetime] = []
    overflow = 0
    for tick in iter_ticks(schedule, last_seen):
        if tick > now:
            break
        if len(candidates) >= MAX_CANDIDATES:
            overflow += 1
            if overflow > MAX_CANDIDATES * 10:
                break
            continue
        candidates.append(tick)
    return decide_ticks(spec, candidates, now, overflow)


def decide_ticks(
    spec: PipelineSpec, candidates: list[datetime], now: datetime, overflow: int = 0
) -> Decision:
    """The policy applied to known candidate ticks (oldest first, all ``<= now``)."""
    if spec.suspend or not candidates:
        return Decision(last_seen=now)
    fresh = [t for t in candidates if now - t <= spec.starting_deadline]
    chosen = _choose(spec, fresh, now)
    taken = set(chosen)
    missed = [t for t in candidates if t not in taken]
    return Decision(
        run=chosen, missed=missed[-20:], missed_count=len(missed) + overflow, last_seen=now
    )


def _choose(spec: PipelineSpec, fresh: list[datetime], now: datetime) -> list[datetime]:
    if not fresh:
        return []
    if spec.missed is MissedPolicy.SKIP:
        return [fresh[-1]] if now - fresh[-1] <= ON_TIME else []
    if spec.missed is MissedPolicy.LATEST:
        return [fresh[-1]]
    return fresh[-spec.max_catchup :]
