"""The in-process event bus: every subscriber gets every event; none can slow a publisher.

``publish`` never blocks: each subscriber has a bounded queue, and a subscriber whose queue is
full is cut off (its iterator ends with ``lagged`` set); it can resubscribe from the last id it
saw, because the bus keeps the newest ``history`` events for replay. Log lines are also kept per
run (bounded), so a viewer that reconnects to a run's log misses nothing recent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.model.events import LOG_LINE, STATS_SAMPLED, Event

Filter = Callable[[Event], bool]
PER_RUN = frozenset({LOG_LINE, STATS_SAMPLED})  # kept per run for replay, not in the global history


class Subscription:
    def __init__(self, bus: Bus, maxsize: int, accept: Filter | None) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self._accept = accept
        self.lagged = False
        self.closed = False

    def _offer(self, event: Event) -> None:
        if self.closed or (self._accept is not None and not self._accept(event)):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True
            self.close()

    def close(self) -> None:
        """No more events; the iterator still yields what is queued, then ends."""
        if self.closed:
            return
        self.closed = True
        self._bus._subscribers.discard(self)
        with contextlib.suppress(
            asyncio.QueueFull
        ):  # wakes a waiting consumer; a full queue needs none
            self._queue.put_nowait(None)

    async def next(self) -> Event | None:
        """The next event, or ``None`` once closed and drained."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def drain(self, limit: int) -> list[Event]:
        """Events already queued (up to ``limit``), without waiting; stops at the end marker."""
        found: list[Event] = []
        while len(found) < limit and not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait(None)  # keep the end marker for next()
                break
            found.append(event)
        return found

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while not (self.closed and self._queue.empty()):
            event = await self._queue.get()
            if event is None:
                return
            yield event


class Bus:
    def __init__(
        self, history: int = 5000, log_lines_per_run: int = 5000, runs_with_logs: int = 200
    ) -> None:
        self._ids = itertools.count(1)
        self._history: deque[Event] = deque(maxlen=history)
        self._logs: OrderedDict[str, deque[Event]] = OrderedDict()
        self._log_lines_per_run = log_lines_per_run
        self._runs_with_logs = runs_with_logs
        self._subscribers: set[Subscription] = set()
        self.last_id = 0

    def publish(self, kind: str, data: dict[str, Any], run_id: str | None = None) -> Event:
        event = Event(id=next(self._ids), kind=kind, at=datetime.now(UTC), run_id=run_id, data=data)
        self.last_id = event.id
        if kind in PER_RUN and run_id is not None:
            lines = self._logs.get(run_id)
            if lines is None:
                lines = self._logs[run_id] = deque(maxlen=self._log_lines_per_run)
                while len(self._logs) > self._runs_with_logs:
                    self._logs.popitem(last=False)
            lines.append(event)
        else:
            self._history.append(event)
        for subscriber in list(self._subscribers):
            subscriber._offer(event)
        return event

    def subscribe(
        self,
        *,
        after_id: int | None = None,
        run_id: str | None = None,
        maxsize: int = 1000,
        accept: Filter | None = None,
    ) -> Subscription:
        """Events after ``after_id`` (replayed from history) and then live ones.

        With ``run_id``, only that run's events (its log lines included); without, every event
        except log lines (resource samples are delivered live but not replayed).
        """

        def wanted(event: Event) -> bool:
            if run_id is not None:
                return event.run_id == run_id and (accept is None or accept(event))
            return event.kind != LOG_LINE and (accept is None or accept(event))

        subscription = Subscription(self, maxsize, wanted)
        if after_id is not None:
            source = (
                list(self._logs.get(run_id, ())) + list(self._history)
                if run_id
                else list(self._history)
            )
            for event in sorted(source, key=lambda e: e.id):
                if event.id > after_id:
                    subscription._offer(event)
        self._subscribers.add(subscription)
        return subscription

    def run_log(self, run_id: str) -> list[Event]:
        """The run's recent log line events (resource samples left out)."""
        return [e for e in self._logs.get(run_id, ()) if e.kind == LOG_LINE]

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
