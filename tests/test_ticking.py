"""Which ticks run and which are missed (pure), and the cron loop on a manual clock (no real sleeping)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.core.scheduling import next_ticks
from reconciler.core.ticking import Decision, decide
from reconciler.model.specs import PipelineSpec, Schedule
from reconciler.runtime.clock import ManualClock
from reconciler.runtime.cron import Cron


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def spec(**fields: Any) -> PipelineSpec:
    return PipelineSpec.model_validate(fields)


HOURLY = Schedule.model_validate({"cron": "0 * * * *"})


@pytest.mark.parametrize(
    ("fields", "last_seen", "now", "run", "missed_count"),
    [
        # on time: the one due tick runs, whatever the policy
        (
            {"missed": "skip"},
            utc(2026, 1, 1, 9, 59),
            utc(2026, 1, 1, 10, 0, 1),
            [utc(2026, 1, 1, 10)],
            0,
        ),
        (
            {"missed": "latest"},
            utc(2026, 1, 1, 9, 59),
            utc(2026, 1, 1, 10, 0, 1),
            [utc(2026, 1, 1, 10)],
            0,
        ),
        # down from 06:30 to 10:20: ticks 07, 08, 09, 10
        ({"missed": "skip"}, utc(2026, 1, 1, 6, 30), utc(2026, 1, 1, 10, 20), [], 4),
        (
            {"missed": "latest"},
            utc(2026, 1, 1, 6, 30),
            utc(2026, 1, 1, 10, 20),
            [utc(2026, 1, 1, 10)],
            3,
        ),
        (
            {"missed": "all", "starting_deadline": "1d"},
            utc(2026, 1, 1, 6, 30),
            utc(2026, 1, 1, 10, 20),
            [utc(2026, 1, 1, h) for h in (7, 8, 9, 10)],
            0,
        ),
        (
            {"missed": "all", "starting_deadline": "1d", "max_catchup": 2},
            utc(2026, 1, 1, 6, 30),
            utc(2026, 1, 1, 10, 20),
            [utc(2026, 1, 1, 9), utc(2026, 1, 1, 10)],
            2,
        ),
        # starting_deadline: ticks older than it are missed even under `all`
        (
            {"missed": "all", "starting_deadline": "90m"},
            utc(2026, 1, 1, 6, 30),
            utc(2026, 1, 1, 10, 20),
            [utc(2026, 1, 1, 9), utc(2026, 1, 1, 10)],
            2,
        ),
        (
            {"missed": "latest", "starting_deadline": "10m"},
            utc(2026, 1, 1, 6, 30),
            utc(2026, 1, 1, 10, 20),
            [],
            4,
        ),
        # suspended: nothing runs, nothing is recorded
        ({"suspend": True}, utc(2026, 1, 1, 6, 30), utc(2026, 1, 1, 10, 20), [], 0),
    ],
)
def test_decide_applies_missed_policy_and_deadline(
    fields: dict[str, Any],
    last_seen: datetime,
    now: datetime,
    run: list[datetime],
    missed_count: int,
) -> None:
    decision = decide(spec(schedules=[{"cron": "0 * * * *"}], **fields), HOURLY, last_seen, now)
    assert decision.run == run
    assert decision.missed_count == missed_count
    assert decision.last_seen == now


class Fired:
    def __init__(self) -> None:
        self.runs: list[tuple[str, str, datetime]] = []
        self.missed: list[tuple[str, str, int]] = []

    async def __call__(
        self, pipeline: str, key: str, schedule: Schedule, decision: Decision
    ) -> None:
        self.runs += [(pipeline, key, tick) for tick in decision.run]
        if decision.missed_count:
            self.missed.append((pipeline, key, decision.missed_count))


async def run_cron(cron: Cron, clock: ManualClock, steps: list[float]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(cron.run(stop))
    for _ in range(20):  # let the loop arm its first sleep before time moves
        await asyncio.sleep(0)
    for step in steps:
        await clock.advance(step)
    stop.set()
    await task


def test_daily_0230_berlin_runs_once_on_both_dst_transition_days() -> None:
    async def body() -> list[datetime]:
        clock = ManualClock(utc(2026, 3, 27, 12))
        fired = Fired()
        cron = Cron(clock, fired)
        cron.update({"etl": spec(schedules=[{"cron": "30 2 * * *", "timezone": "Europe/Berlin"}])})
        await run_cron(cron, clock, [3600.0] * 24 * 4)  # 27 Mar .. 31 Mar, hour by hour
        clock2 = ManualClock(utc(2026, 10, 23, 12))
        fired2 = Fired()
        cron2 = Cron(clock2, fired2)
        cron2.update({"etl": spec(schedules=[{"cron": "30 2 * * *", "timezone": "Europe/Berlin"}])})
        await run_cron(cron2, clock2, [600.0] * 6 * 24 * 4)  # 23 Oct .. 27 Oct, every 10 minutes
        return [t for _, _, t in fired.runs] + [t for _, _, t in fired2.runs]

    ticks = asyncio.run(body())
    assert ticks == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 30),  # 02:30 does not exist: 03:30 CEST, once
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 happens twice: only the first
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
        utc(2026, 10, 27, 1, 30),
    ]


def test_changing_a_cron_does_not_replay_earlier_ticks() -> None:
    async def body() -> list[datetime]:
        clock = ManualClock(utc(2026, 5, 1, 2, 59))
        fired = Fired()
        cron = Cron(clock, fired)
        cron.update({"etl": spec(schedules=[{"cron": "0 3 * * *"}])})
        await run_cron(cron, clock, [120.0])  # 03:00 runs
        cron.update({"etl": spec(schedules=[{"cron": "0 1,3 * * *"}])})  # now also 01:00 and 03:00
        await run_cron(cron, clock, [3600.0] * 24)
        return [t for _, _, t in fired.runs]

    assert asyncio.run(body()) == [utc(2026, 5, 1, 3), utc(2026, 5, 2, 1), utc(2026, 5, 2, 3)]


def test_downtime_from_history_is_handled_by_the_missed_policy() -> None:
    async def body() -> tuple[list[tuple[str, str, datetime]], list[tuple[str, str, int]]]:
        clock = ManualClock(utc(2026, 5, 1, 10, 20))
        fired = Fired()
        cron = Cron(clock, fired)
        specs = {
            "skipper": spec(missed="skip", schedules=[{"cron": "0 * * * *"}]),
            "latest": spec(missed="latest", schedules=[{"cron": "0 * * * *"}]),
            "all": spec(missed="all", starting_deadline="1d", schedules=[{"cron": "0 * * * *"}]),
            "fresh": spec(schedules=[{"cron": "0 * * * *"}]),  # never ran: starts now, no catch-up
        }
        history = {(name, "#0"): utc(2026, 5, 1, 6, 0) for name in ("skipper", "latest", "all")}
        cron.update(specs, history)
        await run_cron(cron, clock, [1.0])
        return fired.runs, fired.missed

    runs, missed = asyncio.run(body())
    assert sorted(runs) == sorted(
        [
            ("all", "#0", utc(2026, 5, 1, 7)),
            ("all", "#0", utc(2026, 5, 1, 8)),
            ("all", "#0", utc(2026, 5, 1, 9)),
            ("all", "#0", utc(2026, 5, 1, 10)),
            ("latest", "#0", utc(2026, 5, 1, 10)),
        ]
    )
    assert sorted(missed) == [("latest", "#0", 3), ("skipper", "#0", 4)]


def test_every_schedule_and_suspend_and_removal() -> None:
    async def body() -> list[tuple[str, str, datetime]]:
        clock = ManualClock(utc(2026, 5, 1, 0, 0, 30))
        fired = Fired()
        cron = Cron(clock, fired)
        cron.update(
            {
                "a": spec(schedules=[{"every": "15m", "name": "q"}]),
                "b": spec(suspend=True, schedules=[{"every": "15m"}]),
            }
        )
        await run_cron(cron, clock, [900.0, 900.0])
        cron.update({})
        await run_cron(cron, clock, [3600.0])
        return fired.runs

    assert asyncio.run(body()) == [
        ("a", "q", utc(2026, 5, 1, 0, 15)),
        ("a", "q", utc(2026, 5, 1, 0, 30)),
    ]


def test_ten_thousand_schedules_fire_from_one_heap() -> None:
    async def body() -> int:
        clock = ManualClock(utc(2026, 5, 1, 0, 0, 0))
        fired = Fired()
        cron = Cron(clock, fired)
        cron.update(
            {f"p{i}": spec(schedules=[{"cron": f"{i % 60} * * * *"}]) for i in range(10_000)}
        )
        await run_cron(cron, clock, [60.0] * 60)
        return len(fired.runs)

    assert asyncio.run(body()) == 10_000


def test_schedules_sharing_a_timing_each_fire_every_tick_of_their_own() -> None:
    """Entries that share a schedule (their first ticks are computed once per update) still
    each fire every tick, the same ticks `next_ticks` gives, also across a DST change and after
    an update that changes some of them."""
    timings = [
        {"cron": "*/20 * * * *"},
        {"cron": "30 1-3 * * *", "timezone": "Europe/Berlin"},
        {"every": "45m"},
        {"cron": "0 * * * *", "timezone": "America/New_York"},
        {"cron": "5 */2 * * *"},
    ]
    start = utc(2026, 3, 29, 0, 5)  # Berlin springs forward at 01:00 UTC this day

    async def body() -> Fired:
        clock = ManualClock(start)
        fired = Fired()
        cron = Cron(clock, fired)
        cron.update({f"p{i}": spec(schedules=[timings[i % 5]]) for i in range(15)})
        await run_cron(cron, clock, [300.0] * 24)  # to 02:05
        cron.update(
            {f"p{i}": spec(schedules=[timings[(i + (i < 5)) % 5]]) for i in range(15)}
        )  # p0-p4 change timing at 02:05
        await run_cron(cron, clock, [300.0] * 24)  # to 04:05
        return fired

    fired = asyncio.run(body())
    middle, end = utc(2026, 3, 29, 2, 5), utc(2026, 3, 29, 4, 5)
    for i in range(15):
        got = sorted(tick for name, _, tick in fired.runs if name == f"p{i}")
        before = Schedule.model_validate(timings[i % 5])
        after = Schedule.model_validate(timings[(i + (i < 5)) % 5])
        expected = [t for t in next_ticks(before, start, 50) if t <= middle]
        expected += [t for t in next_ticks(after, middle, 50) if t <= end]
        assert got == expected, f"p{i}"
