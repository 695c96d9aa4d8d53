"""Prometheus metrics, fed from the event bus (``prometheus-client``, one registry per process).

runs by pipeline and state, run durations, setup times, queue length, the last applied commit's
time, pass durations, and push-to-run latency (the commit seen by a pass -> its push run started);
for alerting: passes by result (``ok``, ``fetch_failed``, ``failed``), whether the source answered
the last fetch, and whether the newest tracked commit applied (0 while one is rejected).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from reconciler.model.events import (
    COMMIT_FETCHED,
    PASS_COMPLETED,
    RUN_FINISHED,
    RUN_SKIPPED,
    RUN_STARTED,
    Event,
)
from reconciler.runtime.bus import Bus

logger = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
DURATION_BUCKETS = (0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600)


class Metrics:
    def __init__(
        self,
        queue_length: Callable[[], float],
        applied_time: Callable[[], float],
        tracked_applied: Callable[[], float] = lambda: 1.0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "fastflow_runs",
            "Finished runs by pipeline and state",
            ["pipeline", "state"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "fastflow_run_duration_seconds",
            "Run durations",
            ["pipeline"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.setup = Histogram(
            "fastflow_run_setup_seconds",
            "Container start to the user's code starting",
            ["pipeline"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.passes = Histogram(
            "fastflow_pass_duration_seconds",
            "Reconcile pass durations",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.push_to_run = Histogram(
            "fastflow_push_to_run_seconds",
            "New commit seen -> its push run started",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        queue = Gauge("fastflow_queue_length", "Runs waiting to start", registry=self.registry)
        queue.set_function(queue_length)
        applied = Gauge(
            "fastflow_last_applied_commit_timestamp_seconds",
            "Commit time of the applied commit",
            registry=self.registry,
        )
        applied.set_function(applied_time)
        self.pass_results = Counter(
            "fastflow_passes",
            "Reconcile passes by result: ok, fetch_failed (source unreachable), failed",
            ["result"],
            registry=self.registry,
        )
        self.source_up = Gauge(
            "fastflow_source_up",
            "1 when the last fetch of the source succeeded",
            registry=self.registry,
        )
        tracked = Gauge(
            "fastflow_tracked_commit_applied",
            "0 while the newest commit of the tracked branch could not apply at all",
            registry=self.registry,
        )
        tracked.set_function(tracked_applied)
        self._seen: OrderedDict[str, datetime] = OrderedDict()

    def observe(self, event: Event) -> None:
        data = event.data
        if event.kind == COMMIT_FETCHED:
            self._seen[str(data.get("commit"))] = event.at
            while len(self._seen) > 1000:
                self._seen.popitem(last=False)
        elif event.kind == PASS_COMPLETED:
            self.passes.observe(float(data.get("duration_s") or 0.0))
            fetched = bool(data.get("fetched"))
            self.source_up.set(1.0 if fetched else 0.0)
            result = "fetch_failed" if not fetched else "failed" if data.get("error") else "ok"
            self.pass_results.labels(result).inc()
        elif (
            event.kind == RUN_STARTED and data.get("trigger") == "push" and data.get("attempt") == 1
        ):
            seen = self._seen.get(str(data.get("commit")))
            if seen is not None:
                self.push_to_run.observe(max((event.at - seen).total_seconds(), 0.0))
        elif event.kind in (RUN_FINISHED, RUN_SKIPPED):
            pipeline = str(data.get("pipeline"))
            self.runs.labels(pipeline, str(data.get("state"))).inc()
            if data.get("duration_s") is not None:
                self.duration.labels(pipeline).observe(float(data["duration_s"]))
            if data.get("setup_s") is not None:
                self.setup.labels(pipeline).observe(float(data["setup_s"]))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def follow(self, bus: Bus) -> None:
        """Observe every event, forever (cancel the task to stop); resubscribes from the last id
        seen if it ever falls behind."""
        last = bus.last_id
        while True:
            subscription = bus.subscribe(after_id=last, maxsize=10_000)
            async for event in subscription:
                last = event.id
                self.observe(event)
