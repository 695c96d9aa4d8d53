"""Reading what Docker answers: log frames and timestamps, stats documents, container states ->
outcomes, API errors -> messages. Pure helpers of ``executors.docker`` (plus one thread helper)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import docker.errors

from reconciler.model.runs import ResourceSample, RunOutcome, RunRequest, RunState

T = TypeVar("T")


@dataclass
class AttemptNotes:
    """What this process knows about an attempt beyond the engine's state."""

    user_start: float | None = None
    ended_by: RunState | None = None  # TIMED_OUT or CANCELLED when we stopped it
    done: threading.Event = field(default_factory=threading.Event)


async def in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a long blocking call in a daemon thread: unlike ``asyncio.to_thread``, a process that
    shuts down does not wait for it (a graceful stop must not wait for the run to end)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            result = function(*args)
        except BaseException as exc:  # noqa: BLE001  (handed to the awaiting task)
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=work, daemon=True, name="fastflow-docker-wait").start()
    return await future


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def parse_stats(raw: Any) -> ResourceSample | None:
    """A Docker stats document (cgroup v1 or v2) -> ``ResourceSample``; ``None`` once it ended."""
    if not isinstance(raw, dict):
        return None
    memory = raw.get("memory_stats") or {}
    cpu = (raw.get("cpu_stats") or {}).get("cpu_usage") or {}
    usage = int(memory.get("usage") or 0)
    if not usage and not cpu.get("total_usage"):
        return None
    # cgroup v1 counts page cache in usage; Docker's CLI subtracts it too
    details = memory.get("stats") or {}
    cache = int(details.get("total_inactive_file") or details.get("inactive_file") or 0)
    return ResourceSample(
        at=datetime.now(UTC),
        cpu_seconds=int(cpu.get("total_usage") or 0) / 1e9,
        memory_bytes=max(usage - cache, 0),
        memory_peak_bytes=int(memory.get("max_usage") or usage),
        memory_limit_bytes=int(memory.get("limit") or 0),
    )


def container_name(instance: str, run_id: str, attempt: int) -> str:
    return f"fastflow-{instance}-{run_id}-a{attempt}"[:200]


def classify(
    request: RunRequest,
    state: dict[str, Any],
    attempt: AttemptNotes,
    image_id: str,
    uv_version: str,
) -> RunOutcome:
    exit_code = state.get("ExitCode")
    started, finished = docker_time(state.get("StartedAt")), docker_time(state.get("FinishedAt"))
    if attempt.ended_by is not None:
        result, message = attempt.ended_by, f"stopped by Fast-Flow ({attempt.ended_by.value})"
        if result is RunState.TIMED_OUT:
            message = f"killed after the timeout of {request.timeout_s:g}s"
    elif state.get("OOMKilled"):
        result, message = (
            RunState.OOM,
            f"killed by the kernel: over the memory limit of {request.resources.memory} bytes",
        )
    elif exit_code == 0:
        result, message = RunState.SUCCEEDED, ""
    else:
        result, message = RunState.FAILED, f"exited with code {exit_code}"
        if state.get("Error"):
            result, message = RunState.ERROR, str(state["Error"])
    return RunOutcome(
        run_id=request.run_id,
        attempt=request.attempt,
        state=result,
        exit_code=exit_code,
        started_at=to_datetime(started),
        finished_at=to_datetime(finished),
        duration_s=round(finished - started, 3)
        if started and finished and finished >= started
        else None,
        setup_s=round(attempt.user_start - started, 3) if attempt.user_start and started else None,
        image=request.image,
        image_id=image_id,
        uv_version=uv_version,
        message=message,
    )


def explain_api_error(exc: docker.errors.APIError, image: str) -> str:
    status = exc.status_code
    detail = (exc.explanation or str(exc)).strip()
    if isinstance(exc, docker.errors.ImageNotFound) or (
        status == 404 and "image" in detail.lower()
    ):
        return f"image {image!r} is not on the engine (no registry is pulled from): {detail}"
    if status == 403:
        return f"the Docker API refused the request (403): is the socket proxy allowing containers? {detail}"
    return f"the Docker engine could not start the container ({status}): {detail}"


def log_entries(chunk: bytes) -> Iterator[bytes]:
    """Split a chunk into log entries, keeping each entry's newline (a partial entry has none)."""
    start = 0
    while start < len(chunk):
        end = chunk.find(b"\n", start)
        if end == -1:
            yield chunk[start:]
            return
        yield chunk[start : end + 1]
        start = end + 1


def parse_log_line(raw: bytes) -> tuple[datetime, str]:
    text = raw.decode("utf-8", "replace").rstrip("\r")
    stamp, _, rest = text.partition(" ")
    at = to_datetime(docker_time(stamp)) or datetime.now(UTC)
    return at, rest


def docker_time(value: str | None) -> float | None:
    """Docker's RFC 3339 with nanoseconds -> epoch seconds; ``None`` for the zero time."""
    if not value or value.startswith("0001-"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    try:
        base = datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    digits = "".join(ch for ch in frac if ch.isdigit())
    return base + (float(f"0.{digits}") if digits else 0.0)


def to_datetime(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def to_float(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None
