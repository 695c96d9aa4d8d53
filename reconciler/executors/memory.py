"""The in-memory backend: a real executor with scripted programs instead of containers.

For tests of the layers above (scheduler, supervisor, site) and for the executor contract tests,
which run the same test bodies against ``docker`` and ``memory``. A ``Program`` says what an
attempt prints, how it ends, and whether it hangs until cancelled or timed out; register one per
run id in ``programs`` or per pipeline in ``pipeline_programs`` (the default prints nothing and
succeeds). Images not in ``images`` fail
to launch, as a missing image does on Docker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.errors import LaunchError
from reconciler.executors.base import RunHandle
from reconciler.model.runs import (
    LogLine,
    ManagedRun,
    ResourceSample,
    RunOutcome,
    RunRequest,
    RunState,
    Stream,
)


@dataclass(frozen=True)
class Program:
    output: tuple[tuple[Stream, str], ...] = ()
    exit_code: int = 0
    oom: bool = False
    hang: bool = False
    memory_bytes: int = 0  # what stats() reports while it runs
    line_delay_s: float = 0.0  # real time between output lines (for live streaming tests)


@dataclass
class _Attempt:
    request: RunRequest
    env: dict[str, str]
    started_at: datetime
    lines: list[LogLine] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: RunOutcome | None = None


class MemoryExecutor:
    def __init__(
        self,
        instance: str = "memory",
        images: frozenset[str] = frozenset({"fastflow-runner:local"}),
    ) -> None:
        self.instance = instance
        self.images = set(images)
        self.programs: dict[str, Program] = {}  # by run id
        self.pipeline_programs: dict[
            str, list[Program]
        ] = {}  # by pipeline: one per attempt, the last repeats
        self.launched: list[RunRequest] = []
        self._attempts: dict[str, _Attempt] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def env_of(self, handle: RunHandle) -> dict[str, str]:
        """The environment an attempt was started with (tests check secret injection)."""
        return dict(self._attempts[handle.ref].env)

    async def launch(
        self, request: RunRequest, secrets: Mapping[str, str] | None = None
    ) -> RunHandle:
        if request.image not in self.images:
            raise LaunchError(
                f"image {request.image!r} is not on the engine (no registry is pulled from)"
            )
        ref = f"mem-{self.instance}-{request.run_id}-a{request.attempt}"
        if ref not in self._attempts:
            attempt = _Attempt(request, {**request.env, **(secrets or {})}, datetime.now(UTC))
            self._attempts[ref] = attempt
            self.launched.append(request)
            task = asyncio.create_task(self._play(attempt, self._program(request)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return RunHandle(ref=ref, request=self._attempts[ref].request)

    def _program(self, request: RunRequest) -> Program:
        if request.run_id in self.programs:
            return self.programs[request.run_id]
        scripted = self.pipeline_programs.get(request.pipeline)
        if scripted:
            return scripted[min(request.attempt, len(scripted)) - 1]
        return Program()

    def running(self) -> list[str]:
        """Run ids of attempts that have not ended."""
        return [a.request.run_id for a in self._attempts.values() if not a.finished.is_set()]

    async def _play(self, attempt: _Attempt, program: Program) -> None:
        for seq, (stream, text) in enumerate(program.output, start=1):
            line = LogLine(
                run_id=attempt.request.run_id,
                stream=stream,
                at=datetime.now(UTC),
                text=text,
                seq=seq,
            )
            attempt.lines.append(line)
            attempt.changed.set()
            await asyncio.sleep(program.line_delay_s)
        if program.hang:
            await attempt.finished.wait()
            return
        if program.oom:
            self._finish(attempt, RunState.OOM, 137, "killed by the kernel: over the memory limit")
        elif program.exit_code == 0:
            self._finish(attempt, RunState.SUCCEEDED, 0, "")
        else:
            self._finish(
                attempt, RunState.FAILED, program.exit_code, f"exited with code {program.exit_code}"
            )

    def _finish(
        self, attempt: _Attempt, state: RunState, exit_code: int | None, message: str
    ) -> None:
        if attempt.finished.is_set():
            return
        now = datetime.now(UTC)
        attempt.outcome = RunOutcome(
            run_id=attempt.request.run_id,
            attempt=attempt.request.attempt,
            state=state,
            exit_code=exit_code,
            started_at=attempt.started_at,
            finished_at=now,
            duration_s=round((now - attempt.started_at).total_seconds(), 3),
            setup_s=0.0,
            image=attempt.request.image,
            image_id="memory",
            uv_version="memory",
            message=message,
        )
        attempt.finished.set()
        attempt.changed.set()

    async def logs(self, handle: RunHandle) -> AsyncIterator[LogLine]:
        attempt = self._attempts[handle.ref]
        index = 0
        while True:
            attempt.changed.clear()
            while index < len(attempt.lines):
                yield attempt.lines[index]
                index += 1
            if attempt.finished.is_set():
                return
            await attempt.changed.wait()

    async def wait(self, handle: RunHandle, timeout_s: float | None = None) -> RunOutcome:
        attempt = self._attempts[handle.ref]
        try:
            await asyncio.wait_for(attempt.finished.wait(), timeout_s)
        except TimeoutError:
            self._finish(
                attempt, RunState.TIMED_OUT, 137, f"killed after the timeout of {timeout_s:g}s"
            )
        assert attempt.outcome is not None
        return attempt.outcome

    async def cancel(self, handle: RunHandle) -> None:
        self._finish(
            self._attempts[handle.ref], RunState.CANCELLED, 143, "stopped by Fast-Flow (cancelled)"
        )

    async def outcome(self, handle: RunHandle) -> RunOutcome | None:
        return self._attempts[handle.ref].outcome

    async def stats(self, handle: RunHandle) -> ResourceSample | None:
        attempt = self._attempts.get(handle.ref)
        if attempt is None or attempt.finished.is_set():
            return None
        memory = self._program(attempt.request).memory_bytes
        return ResourceSample(
            at=datetime.now(UTC),
            cpu_seconds=0.0,
            memory_bytes=memory,
            memory_peak_bytes=memory,
            memory_limit_bytes=attempt.request.resources.memory,
        )

    async def list_managed(self) -> list[ManagedRun]:
        return [
            ManagedRun(
                ref=ref,
                run_id=a.request.run_id,
                pipeline=a.request.pipeline,
                commit=a.request.commit,
                trigger=a.request.trigger,
                attempt=a.request.attempt,
                running=not a.finished.is_set(),
                timeout_s=a.request.timeout_s,
                scheduled_for=a.request.scheduled_for,
            )
            for ref, a in self._attempts.items()
        ]

    async def adopt(self, managed: ManagedRun) -> RunHandle:
        return RunHandle(ref=managed.ref, request=self._attempts[managed.ref].request)

    async def remove(self, handle: RunHandle) -> None:
        self._attempts.pop(handle.ref, None)
