"""Encode, parse, trim and merge notes; compute commit statuses. Pure.

Encoding: one compact JSON object per line, ``at`` first, the other keys sorted, ``None`` values
left out, times as UTC ISO-8601 with milliseconds and ``Z`` (fixed width, so lines sort by time).

Merging is git's ``cat_sort_uniq``: concatenate, sort the lines, drop duplicates. Trimming keeps
the newest ``max_runs`` run lines per pipeline and the newest ``max_runs`` status lines per
context; it runs on every append, so a line a merge brings back is dropped again next time.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from reconciler.model.notes import NoteLine, RunLine, StatusLine, StatusState


def format_at(moment: datetime) -> str:
    """``2026-11-27T20:57:09.123Z``: UTC, milliseconds, fixed width."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_at(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def encode_line(line: NoteLine | dict[str, Any]) -> str:
    """One note line: ``{"at":...,<other keys sorted>}`` without a newline."""
    data = line.model_dump(mode="python") if not isinstance(line, dict) else dict(line)
    data = _jsonable(data)
    at = data.pop("at")
    rest = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    head = json.dumps({"at": at}, separators=(",", ":"), ensure_ascii=False)
    return head if rest == "{}" else f"{head[:-1]},{rest[1:]}"


def parse_lines(text: str) -> list[NoteLine | dict[str, Any]]:
    """Every readable line of a note; unknown types stay dicts, unreadable lines are skipped."""
    found: list[NoteLine | dict[str, Any]] = []
    for raw in text.splitlines():
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        found.append(_model(data))
    return found


def _model(data: dict[str, Any]) -> NoteLine | dict[str, Any]:
    kind = data.get("type")
    try:
        if kind == "status":
            return StatusLine.model_validate(data)
        if kind == "run":
            return RunLine.model_validate(data)
    except ValidationError:
        pass  # a newer writer changed a field's shape: keep the line as data
    return data


def merge_notes(*texts: str) -> str:
    """git's ``cat_sort_uniq`` strategy."""
    lines = sorted({line for text in texts for line in text.splitlines() if line.strip()})
    return "".join(f"{line}\n" for line in lines)


def append_lines(text: str, new: Iterable[str], max_runs: int) -> str:
    """``text`` plus ``new`` lines (deduplicated), trimmed to the newest ``max_runs`` per key."""
    lines = [line for line in text.splitlines() if line.strip()]
    seen = set(lines)
    for line in new:
        if line not in seen:
            lines.append(line)
            seen.add(line)
    return "".join(f"{line}\n" for line in trim(lines, max_runs))


def trim(lines: list[str], max_runs: int) -> list[str]:
    """Drop all but the newest ``max_runs`` run lines per pipeline and status lines per context."""
    groups: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for index, raw in enumerate(lines):
        key = _trim_key(raw)
        if key is not None:
            groups[key].append((raw, index))
    dropped: set[int] = set()
    for members in groups.values():
        if len(members) > max_runs:
            ordered = sorted(members)  # lines start with "at", so this is by time
            dropped |= {index for _, index in ordered[: len(members) - max_runs]}
    return [line for index, line in enumerate(lines) if index not in dropped]


@functools.lru_cache(maxsize=65536)
def _trim_key(raw: str) -> tuple[str, str] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("type") == "run" and isinstance(data.get("pipeline"), str):
        return ("run", data["pipeline"])
    if data.get("type") == "status" and isinstance(data.get("context"), str):
        return ("status", data["context"])
    return None


def current_statuses(lines: Iterable[NoteLine | dict[str, Any]]) -> dict[str, StatusLine]:
    """The newest status line per context (as on GitHub)."""
    newest: dict[str, StatusLine] = {}
    for line in lines:
        if isinstance(line, StatusLine):
            known = newest.get(line.context)
            if known is None or line.at >= known.at:
                newest[line.context] = line
    return dict(sorted(newest.items()))


def combined_state(statuses: Iterable[StatusLine]) -> StatusState:
    """GitHub's combined status: failure if any error/failure, pending if none or any pending."""
    states = [s.state for s in statuses]
    if any(s in (StatusState.FAILURE, StatusState.ERROR) for s in states):
        return StatusState.FAILURE
    if not states or StatusState.PENDING in states:
        return StatusState.PENDING
    return StatusState.SUCCESS


def runs_of(lines: Iterable[NoteLine | dict[str, Any]]) -> list[RunLine]:
    """Run lines, newest first."""
    return sorted(
        (line for line in lines if isinstance(line, RunLine)), key=lambda r: r.at, reverse=True
    )


_PIPELINE = re.compile(r'"pipeline":"((?:[^"\\]|\\.)*)"')


def latest_runs(texts: Iterable[str], per_pipeline: int) -> dict[str, list[RunLine]]:
    """The newest ``per_pipeline`` run lines of every pipeline across many notes, newest first.

    Lines are bucketed by the raw ``at`` prefix (fixed width, so text order is time order) and
    the ``pipeline`` field, and only the survivors are parsed: start-up reads of large histories
    stay fast. Lines that do not look like ours are parsed fully, so nothing is missed.
    """
    newest: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for text in texts:
        for raw in text.splitlines():
            if '"type":"run"' not in raw:
                continue
            key = _fast_key(raw)
            if key is None:
                continue
            at, pipeline = key
            bucket = newest[pipeline]
            bucket.append((at, raw))
            if len(bucket) > 4 * per_pipeline:
                bucket.sort(reverse=True)
                del bucket[per_pipeline:]
    result: dict[str, list[RunLine]] = {}
    for pipeline, bucket in sorted(newest.items()):
        bucket.sort(reverse=True)
        runs = [
            line
            for _, raw in bucket[:per_pipeline]
            for line in parse_lines(raw)
            if isinstance(line, RunLine)
        ]
        result[pipeline] = runs
    return result


def _fast_key(raw: str) -> tuple[str, str] | None:
    match = _PIPELINE.search(raw)
    if (
        raw.startswith('{"at":"')
        and raw[30:32] == 'Z"'
        and match is not None
        and "\\" not in match.group(1)
    ):
        return raw[7:31], match.group(1)
    try:  # not written by us: parse it properly
        data = json.loads(raw)
    except ValueError:
        return None
    if (
        isinstance(data, dict)
        and isinstance(data.get("pipeline"), str)
        and isinstance(data.get("at"), str)
    ):
        return data["at"], data["pipeline"]
    return None
