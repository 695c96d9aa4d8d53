"""The scheduler loop: wakes at the next tick of any schedule and hands due ticks to the supervisor.

Entries live in a heap keyed by their next tick, so 10,000 schedules cost one heap operation per
fire, not a scan. ``update`` (after each applied commit) adds, removes and changes entries: a
changed schedule restarts at the moment of the change. ``last_seen`` comes from the notes at
start-up (the newest recorded tick per pipeline and schedule), so ticks missed while the
reconciler was down are found and handled by each pipeline's ``missed`` policy.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from reconciler.core.scheduling import iter_ticks
from reconciler.core.ticking import Decision, decide, decide_ticks, schedule_key
from reconciler.model.specs import PipelineSpec, Schedule
from reconciler.runtime.clock import Clock

logger = logging.getLogger(__name__)
EntryKey = tuple[str, str]  # (pipeline, schedule key)
OnDecision = Callable[[str, str, Schedule, Decision], Awaitable[None]]


FAST_PATH_TICKS = 1000  # more candidates than this (a long downtime): recompute from scratch


@dataclass
class _Entry:
    spec: PipelineSpec
    schedule: Schedule
    fingerprint: str
    last_seen: datetime
    next_at: datetime
    version: int
    following: datetime  # the tick after next_at, computed ahead so firing does no cron maths
    ticks: Iterator[datetime]  # positioned just after `following`: no croniter rebuilt per fire


def _fingerprint(spec: PipelineSpec, schedule: Schedule) -> str:
    return schedule.model_dump_json() + spec.model_dump_json(
        include={"suspend", "missed", "max_catchup", "starting_deadline"}
    )


class Cron:
    def __init__(self, clock: Clock, on_decision: OnDecision) -> None:
        self.clock = clock
        self.on_decision = on_decision
        self._entries: dict[EntryKey, _Entry] = {}
        self._heap: list[tuple[datetime, int, EntryKey]] = []
        self._versions = itertools.count()
        self._changed = asyncio.Event()
        self._pairs: dict[tuple[object, ...], tuple[datetime, datetime]] = {}
        self.lateness_s: list[float] = []  # how late each fire started (bounded, for metrics)

    def __len__(self) -> int:
        return len(self._entries)

    def update(
        self, specs: Mapping[str, PipelineSpec], history: Mapping[EntryKey, datetime] | None = None
    ) -> None:
        """Set the schedules. ``history`` gives the newest recorded tick of entries seen for the
        first time (start-up); new or changed entries otherwise start now."""
        now = self.clock.now()
        self._pairs.clear()
        wanted: dict[EntryKey, tuple[PipelineSpec, Schedule]] = {}
        for name, spec in specs.items():
            for index, schedule in enumerate(spec.schedules):
                wanted[(name, schedule_key(schedule, index))] = (spec, schedule)
        for key in [k for k in self._entries if k not in wanted]:
            del self._entries[key]
        for key, (spec, schedule) in wanted.items():
            entry = self._entries.get(key)
            if entry is not None and entry.spec is spec and entry.schedule is schedule:
                continue  # the very same objects (the loader reused them): nothing changed
            fingerprint = _fingerprint(spec, schedule)
            if entry is not None and entry.fingerprint == fingerprint:
                entry.spec = spec
                continue
            last_seen = now if entry is not None else min((history or {}).get(key, now), now)
            self._add(key, spec, schedule, fingerprint, last_seen)
        self._changed.set()

    def _add(
        self,
        key: EntryKey,
        spec: PipelineSpec,
        schedule: Schedule,
        fingerprint: str,
        last_seen: datetime,
    ) -> None:
        version = next(self._versions)
        # Schedules with the same timing and start share their first two ticks (many pipelines
        # use the same few crons); the iterator for later ticks is a lazy generator, so its
        # croniter is only built when the entry first fires.
        timing = (schedule.cron, schedule.every, schedule.timezone, last_seen)
        pair = self._pairs.get(timing)
        if pair is None:
            ticks = iter_ticks(schedule, last_seen)
            pair = self._pairs[timing] = (next(ticks), next(ticks))
        first, following = pair
        entry = _Entry(
            spec,
            schedule,
            fingerprint,
            last_seen,
            first,
            version,
            following,
            iter_ticks(schedule, following),
        )
        self._entries[key] = entry
        heapq.heappush(self._heap, (entry.next_at, version, key))

    def next_at(self) -> datetime | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def _drop_stale(self) -> None:
        while self._heap:
            at, version, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry.version == version and entry.next_at == at:
                return
            heapq.heappop(self._heap)

    async def fire_due(self) -> int:
        """Handle every entry whose next tick has come; returns how many fired.

        Decisions are handed over first; the cron maths for the next ticks (the slow part) is
        done after every due entry has been handed over, so 10,000 schedules firing together
        start as early as possible."""
        now = self.clock.now()
        due: list[EntryKey] = []
        while (at := self.next_at()) is not None and at <= now:
            due.append(heapq.heappop(self._heap)[2])
        advance: list[tuple[EntryKey, _Entry]] = []
        for key in due:
            entry = self._entries[key]
            if entry.following > now:  # on time: the one due tick is next_at
                decision = decide_ticks(entry.spec, [entry.next_at], now)
                advance.append((key, entry))
            else:  # more than one tick has passed (a downtime): the slow path
                decision = self._catch_up(entry, now)
                self._push(key, entry)
            entry.last_seen = decision.last_seen or now
            if decision.run:
                self._note_lateness((self.clock.now() - decision.run[-1]).total_seconds())
            try:
                await self.on_decision(key[0], key[1], entry.schedule, decision)
            except Exception:
                logger.exception("handling tick of %s/%s failed", *key)
        for key, entry in advance:
            entry.next_at, entry.following = entry.following, next(entry.ticks)
            self._push(key, entry)
        return len(due)

    def _push(self, key: EntryKey, entry: _Entry) -> None:
        entry.version = next(self._versions)
        heapq.heappush(self._heap, (entry.next_at, entry.version, key))

    def _catch_up(self, entry: _Entry, now: datetime) -> Decision:
        """All ticks up to ``now`` from the running iterator; it ends positioned after now."""
        candidates = [entry.next_at, entry.following]
        for tick in entry.ticks:
            if tick > now:
                entry.next_at, entry.following = tick, next(entry.ticks)
                return decide_ticks(entry.spec, candidates, now)
            candidates.append(tick)
            if len(candidates) > FAST_PATH_TICKS:
                break
        decision = decide(entry.spec, entry.schedule, entry.last_seen, now)
        entry.ticks = iter_ticks(entry.schedule, now)
        entry.next_at, entry.following = next(entry.ticks), next(entry.ticks)
        return decision

    def _note_lateness(self, seconds: float) -> None:
        self.lateness_s.append(seconds)
        if len(self.lateness_s) > 100_000:
            del self.lateness_s[:50_000]

    async def _sleep_until(self, when: datetime) -> bool:
        await self.clock.sleep_until(when)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Sleep until the next tick (or a schedule change), fire, repeat, until ``stop``."""
        while not stop.is_set():
            await self.fire_due()
            self._changed.clear()
            at = self.next_at()
            waiters: set[asyncio.Future[object]] = {
                asyncio.ensure_future(self._changed.wait()),
                asyncio.ensure_future(stop.wait()),
            }
            if at is not None:
                waiters.add(asyncio.ensure_future(self._sleep_until(at)))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
