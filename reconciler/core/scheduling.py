"""When schedules fire: DST-correct next ticks for cron and ``every:`` schedules. Pure: ``now`` is passed in.

Cron expressions are read in the schedule's own time zone, on wall-clock time:

* A tick that falls into a spring-forward gap fires at the same wall time plus the gap (02:30
  Europe/Berlin on the last Sunday of March fires at 03:30 CEST), as Go's ``time.Date`` and
  Kubernetes CronJobs do; ticks are strictly increasing, so gap ticks never fire twice.
* A tick in the repeated fall-back hour fires once, at its first occurrence, unless the hour
  field is ``*``: then it fires in both occurrences (an hourly job keeps running hourly).

``every:`` schedules are fixed intervals anchored at 1970-01-01T00:00Z, so ``every: 15m`` fires
at :00, :15, :30 and :45 UTC whoever computes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from reconciler.model.specs import Schedule

MAX_TICKS = 50_000
WEEK = timedelta(days=7)


def next_ticks(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after`` (aware), as aware UTC datetimes."""
    ticks: list[datetime] = []
    for tick in iter_ticks(schedule, after):
        ticks.append(tick)
        if len(ticks) >= count:
            break
    return ticks


def ticks_between(
    schedule: Schedule, start: datetime, end: datetime, limit: int = MAX_TICKS
) -> list[datetime]:
    """Fire times in ``(start, end]``, at most ``limit`` of them."""
    ticks: list[datetime] = []
    for tick in iter_ticks(schedule, start):
        if tick > end or len(ticks) >= limit:
            break
        ticks.append(tick)
    return ticks


def runs_per_day(schedule: Schedule, now: datetime) -> float:
    """Average fire count per day over the week after ``now``."""
    if schedule.every is not None:
        return 86400 / schedule.every.total_seconds()
    return len(ticks_between(schedule, now, now + WEEK)) / 7


def iter_ticks(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``after``, increasing, without end."""
    if after.tzinfo is None:
        raise ValueError("`after` must be timezone-aware")
    if schedule.every is not None:
        yield from _every(schedule.every, after)
    else:
        assert schedule.cron is not None
        yield from _cron(schedule.cron, ZoneInfo(schedule.timezone), after)


def _every(interval: timedelta, after: datetime) -> Iterator[datetime]:
    step = int(interval.total_seconds())
    n = int(after.timestamp()) // step + 1
    while True:
        yield datetime.fromtimestamp(n * step, UTC)
        n += 1


def _cron(expr: str, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    every_hour = _hour_is_wildcard(expr)
    # Start an hour early in wall time: `after` may sit in a repeated hour.
    local = after.astimezone(tz).replace(tzinfo=None, fold=0) - timedelta(hours=1)
    walker = croniter(expr, local)
    last = after
    while True:
        wall: datetime = walker.get_next(datetime)
        for tick in _instants(wall, tz, every_hour):
            if tick > last:
                last = tick
                yield tick


def _instants(wall: datetime, tz: ZoneInfo, every_hour: bool) -> list[datetime]:
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    round_trip = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if round_trip != wall:  # in a spring-forward gap: fold=0 maps to wall time + gap
        return [first.astimezone(UTC)]
    if every_hour:  # ambiguous wall time, hourly-or-finer job: both occurrences
        return [first.astimezone(UTC), second.astimezone(UTC)]
    return [first.astimezone(UTC)]


def _hour_is_wildcard(expr: str) -> bool:
    if expr.startswith("@"):
        return expr == "@hourly"
    return expr.split()[1] == "*"


def format_tick(tick: datetime, timezone: str) -> str:
    """``2026-03-29 03:30 CEST (+02:00)``: a fire time in the schedule's own zone."""
    local = tick.astimezone(ZoneInfo(timezone))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({offset[:3]}:{offset[3:]})"


_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_ALIASES = {
    "@hourly": "every hour",
    "@daily": "every day at 00:00",
    "@midnight": "every day at 00:00",
    "@weekly": "every Sunday at 00:00",
    "@monthly": "on the 1st of every month at 00:00",
    "@yearly": "every 1 January at 00:00",
    "@annually": "every 1 January at 00:00",
}


def _plural(count: int, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


def _every_words(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            return _plural(seconds // size, unit)
    return _plural(seconds, "second")


def _days_words(field: str) -> str | None:
    if field in ("*", "?"):
        return None
    if field == "1-5":
        return "Monday to Friday"
    if field in ("0,6", "6,0", "6-7"):
        return "Saturday and Sunday"
    if field.isdigit() and int(field) <= 7:
        return _DAYS[int(field) % 7]
    return f"days {field}"


def describe_schedule(schedule: Schedule) -> str:
    """A schedule in words, e.g. ``every day at 02:30 (Europe/Berlin)``; falls back to the expression."""
    if schedule.every is not None:
        return _every_words(int(schedule.every.total_seconds()))
    expr = schedule.cron or ""
    zone = f" ({schedule.timezone})" if schedule.timezone != "UTC" else " (UTC)"
    if expr in _ALIASES:
        return _ALIASES[expr] + zone
    minute, hour, dom, month, dow = expr.split()
    if minute.startswith("*/") and hour == dom == month == dow == "*":
        return _plural(int(minute[2:]), "minute") if minute[2:].isdigit() else expr
    if not (minute.isdigit() and month == "*"):
        return f"cron {expr}{zone}"
    if hour == "*" and dom == dow == "*":
        return f"every hour at :{int(minute):02d}"
    if not hour.isdigit():
        return f"cron {expr}{zone}"
    at = f"{int(hour):02d}:{int(minute):02d}"
    days = _days_words(dow)
    if dom == "*" and days is None:
        return f"every day at {at}{zone}"
    if dom == "*":
        return f"{days} at {at}{zone}"
    if dom.isdigit() and days is None:
        return f"on day {int(dom)} of every month at {at}{zone}"
    return f"cron {expr}{zone}"
