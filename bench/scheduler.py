#!/usr/bin/env -S uv run --frozen python
"""Benchmark: the scheduler with 10,000 schedules on the real clock.

10,000 pipelines with one cron schedule each (`M * * * *`, minutes spread evenly: about 167 fire
together every minute) run in the real `Cron` loop for a few minutes; a tick's lateness is the
time between the tick and the moment its decision reached the supervisor's hand-off (which here
only counts). The baseline measured in the same run is the event loop's own wake-up lateness
(`asyncio.sleep` to a deadline), so the ratio shows what the scheduler adds. Idle CPU is the
process CPU time over the quiet seconds between the minute marks, as a share of one core.
Targets (issue 6): p99 lateness < 50 ms at 10,000 schedules.

Usage: bench/scheduler.py [SCHEDULES] [MINUTES]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.core.ticking import Decision  # noqa: E402
from reconciler.model.specs import PipelineSpec, Schedule  # noqa: E402
from reconciler.runtime.clock import SystemClock  # noqa: E402
from reconciler.runtime.cron import Cron  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def loop_baseline(samples: int) -> list[float]:
    late = []
    for _ in range(samples):
        deadline = time.time() + 0.05
        await asyncio.sleep(deadline - time.time())
        late.append(time.time() - deadline)
    return late


async def main_async(count: int, minutes: int) -> None:
    lateness: list[float] = []
    before_start: list[datetime] = []
    running_since = datetime.max.replace(tzinfo=UTC)

    async def handed_over(pipeline: str, key: str, schedule: Schedule, decision: Decision) -> None:
        now = datetime.now(UTC)
        for tick in decision.run:
            if tick < running_since:  # came due while the loop was not running yet: catch-up
                before_start.append(tick)
            else:
                lateness.append((now - tick).total_seconds())

    cron = Cron(SystemClock(), handed_over)
    start = time.perf_counter()
    cron.update(
        {
            f"p{i:05d}": PipelineSpec.model_validate({"schedules": [{"cron": f"{i % 60} * * * *"}]})
            for i in range(count)
        }
    )
    print(f"loaded {count} schedules in {time.perf_counter() - start:.2f}s")
    baseline = await loop_baseline(200)
    running_since = datetime.now(UTC)
    now = datetime.now(UTC)
    end = (now + timedelta(minutes=minutes)).replace(second=30, microsecond=0)
    stop = asyncio.Event()
    task = asyncio.create_task(cron.run(stop))
    idle_cpu, idle_wall = 0.0, 0.0
    while datetime.now(UTC) < end:
        # measure CPU over the quiet middle of each minute (ticks fire at :00)
        await asyncio.sleep(
            max(0.0, 20 - datetime.now(UTC).second % 60) if datetime.now(UTC).second < 20 else 0
        )
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(30)
        idle_cpu += time.process_time() - cpu0
        idle_wall += time.perf_counter() - wall0
        await asyncio.sleep(max(0.0, 62 - datetime.now(UTC).second))
    stop.set()
    await task
    assert lateness, "no tick fired"
    print(f"{len(lateness)} ticks fired over {minutes} minute(s)", end="")
    print(f" (+{len(before_start)} that came due before the loop ran, not counted)")
    p50, p99 = statistics.median(lateness) * 1000, percentile(lateness, 0.99) * 1000
    b50, b99 = statistics.median(baseline) * 1000, percentile(baseline, 0.99) * 1000
    print(
        f"scheduler lateness : p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  max {max(lateness) * 1000:.2f} ms (target p99 < 50)"
    )
    print(f"baseline loop wake : p50 {b50:7.2f} ms  p99 {b99:7.2f} ms")
    print(f"ratio p99 / baseline p99: {p99 / max(b99, 1e-3):.1f}")
    print(
        f"idle CPU: {idle_cpu / max(idle_wall, 1e-9) * 100:.2f}% of one core over {idle_wall:.0f}s between ticks"
    )


if __name__ == "__main__":
    asyncio.run(
        main_async(
            int(sys.argv[1]) if len(sys.argv) > 1 else 10_000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 3,
        )
    )
