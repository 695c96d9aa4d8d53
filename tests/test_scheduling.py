"""Fire times: hand-computed tables across DST transitions, and invariants with Hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.scheduling import format_tick, next_ticks, runs_per_day
from reconciler.model.specs import Schedule


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def sched(**fields: Any) -> Schedule:
    return Schedule.model_validate(fields)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        # 02:30 Berlin daily across spring-forward (2026-03-29): the gap tick runs at 03:30 CEST, once
        (
            sched(cron="30 2 * * *", timezone="Europe/Berlin"),
            utc(2026, 3, 27, 12),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)],
        ),
        # ... and across fall-back (2026-10-25): 02:30 happens twice, the job runs once (first)
        (
            sched(cron="30 2 * * *", timezone="Europe/Berlin"),
            utc(2026, 10, 24, 12),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
        # hourly at :30 across fall-back: both 02:30 CEST and 02:30 CET fire
        (
            sched(cron="30 * * * *", timezone="Europe/Berlin"),
            utc(2026, 10, 24, 23, 0),
            [
                utc(2026, 10, 24, 23, 30),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 1, 30),
                utc(2026, 10, 25, 2, 30),
            ],
        ),
        # hourly at :30 across spring-forward: 02:30 does not exist and collapses into 03:30
        (
            sched(cron="30 * * * *", timezone="Europe/Berlin"),
            utc(2026, 3, 29, 0, 0),
            [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30)],
        ),
        # New York, 2026-03-08 spring-forward at 02:00 local
        (
            sched(cron="15 2 * * *", timezone="America/New_York"),
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 7, 15), utc(2026, 3, 9, 6, 15)],
        ),
        # aliases and UTC
        (sched(cron="@daily"), utc(2026, 1, 1, 0, 0), [utc(2026, 1, 2), utc(2026, 1, 3)]),
        (
            sched(cron="0 9 * * 1-5", timezone="UTC"),
            utc(2026, 11, 27, 10),
            [utc(2026, 11, 30, 9), utc(2026, 12, 1, 9)],
        ),
        # every: anchored at the epoch, independent of `after`
        (
            sched(every="15m"),
            utc(2026, 1, 1, 0, 7),
            [utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 0, 30)],
        ),
        (sched(every="1d"), utc(2026, 1, 1, 0, 0), [utc(2026, 1, 2), utc(2026, 1, 3)]),
    ],
)
def test_next_ticks_match_hand_computed_times(
    schedule: Schedule, after: datetime, expected: list[datetime]
) -> None:
    assert next_ticks(schedule, after, len(expected)) == expected


def test_format_tick_shows_local_time_zone_and_offset() -> None:
    assert format_tick(utc(2026, 3, 29, 1, 30), "Europe/Berlin") == "2026-03-29 03:30 CEST (+02:00)"
    assert format_tick(utc(2026, 3, 28, 1, 30), "Europe/Berlin") == "2026-03-28 02:30 CET (+01:00)"


@pytest.mark.parametrize(
    ("schedule", "per_day"),
    [
        (sched(every="15m"), 96.0),
        (sched(cron="0 3 * * *"), 1.0),
        (sched(cron="0 9 * * 1-5"), 5 / 7),
        (sched(cron="*/30 * * * *"), 48.0),
    ],
)
def test_runs_per_day(schedule: Schedule, per_day: float) -> None:
    assert runs_per_day(schedule, utc(2026, 6, 1)) == pytest.approx(per_day)


CRONS = [
    "30 2 * * *",
    "*/15 * * * *",
    "0 * * * *",
    "0 0 1 * *",
    "45 1-3 * * 0",
    "@hourly",
    "@weekly",
    "5 4 * * sun",
]
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
]


@settings(max_examples=150, deadline=None)
@given(
    cron=st.sampled_from(CRONS),
    zone=st.sampled_from(ZONES),
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
    ),
)
def test_ticks_are_strictly_increasing_and_after_start(
    cron: str, zone: str, start: datetime
) -> None:
    ticks = next_ticks(sched(cron=cron, timezone=zone), start, 30)
    assert len(ticks) == 30
    assert ticks[0] > start
    assert all(b > a for a, b in zip(ticks, ticks[1:], strict=False))


@settings(max_examples=100, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    day=st.dates(min_value=datetime(2020, 1, 1).date(), max_value=datetime(2040, 1, 1).date()),
)
def test_a_daily_job_runs_exactly_once_per_local_day(zone: str, day: Any) -> None:
    schedule = sched(cron="30 2 * * *", timezone=zone)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=1)
    ticks = next_ticks(schedule, start, 10)
    local_days = [t.astimezone(__import__("zoneinfo").ZoneInfo(zone)).date() for t in ticks]
    assert len(set(local_days)) == len(local_days)
