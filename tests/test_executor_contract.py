"""One contract, every backend: the same test bodies run against ``memory`` and ``docker``.

A scenario (what the attempt prints, how it ends) becomes a real Python script in a workspace for
Docker, and a ``Program`` for the memory executor.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.errors import LaunchError
from reconciler.executors.base import Executor, RunHandle
from reconciler.executors.docker import DockerExecutor, DockerSettings
from reconciler.executors.memory import MemoryExecutor, Program
from reconciler.model.runs import LogLine, RunRequest, RunState, Stream, Trigger
from reconciler.model.specs import NetworkMode, Resources
from tests.dockerutil import DOCKER_HOST, RUNNER_IMAGE, require_engine


@dataclass(frozen=True)
class Scenario:
    output: tuple[tuple[Stream, str], ...] = ()
    exit_code: int = 0
    hang: bool = False
    oom: bool = False

    def script(self) -> str:
        lines = ["import sys, time"]
        for stream, text in self.output:
            lines.append(f"print({text!r}, file=sys.{stream.value}, flush=True)")
            lines.append("time.sleep(0.02)")
        if self.oom:
            lines.append("hog = []\nwhile True:\n    hog.append(bytearray(16 * 2**20))")
        if self.hang:
            lines.append("time.sleep(3600)")
        lines.append(f"sys.exit({self.exit_code})")
        return "\n".join(lines) + "\n"


class Backend:
    def __init__(self, executor: Executor, tmp: Path, kind: str) -> None:
        self.executor = executor
        self.tmp = tmp
        self.kind = kind

    def request(
        self, scenario: Scenario, *, timeout_s: float = 60, image: str = RUNNER_IMAGE
    ) -> RunRequest:
        run_id = f"contract-{uuid.uuid4().hex[:10]}"
        workspace = self.tmp / run_id
        workspace.mkdir(mode=0o755)
        (workspace / "main.py").write_text(scenario.script())
        (workspace / "main.py").chmod(0o644)
        if isinstance(self.executor, MemoryExecutor):
            self.executor.programs[run_id] = Program(
                scenario.output, scenario.exit_code, scenario.oom, scenario.hang
            )
        return RunRequest(
            run_id=run_id,
            pipeline="contract",
            commit="0" * 40,
            trigger=Trigger.MANUAL,
            image=image,
            command=["python3", "/app/main.py"],
            env={"PYTHONUNBUFFERED": "1"},
            workspace=str(workspace),
            resources=Resources(memory=64 * 2**20, cpus=1.0, pids=64),
            network=NetworkMode.NONE,
            timeout_s=timeout_s,
        )


@pytest.fixture(params=["memory", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    tmp_path.chmod(0o755)
    if request.param == "memory":
        yield Backend(MemoryExecutor(), tmp_path, "memory")
        return
    require_engine()
    settings = DockerSettings(
        instance=f"test-{uuid.uuid4().hex[:8]}", data_dir=tmp_path / "data", base_url=DOCKER_HOST
    )
    executor = DockerExecutor(settings)
    yield Backend(executor, tmp_path, "docker")
    asyncio.run(_remove_all(executor))
    executor.close()


async def _remove_all(executor: DockerExecutor) -> None:
    for managed in await executor.list_managed():
        handle = await executor.adopt(managed)
        if managed.running:
            await executor.cancel(handle)
        await executor.remove(handle)


async def _collect(lines: AsyncIterator[LogLine]) -> list[LogLine]:
    return [line async for line in lines]


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_success_streams_stdout_and_stderr_apart_and_in_order(backend: Backend) -> None:
    o, e = Stream.STDOUT, Stream.STDERR
    output = (
        (o, "out-0"),
        (e, "err-0"),
        (o, "out-1"),
        (o, "out-2"),
        (e, "err-1"),
        (e, "err-2"),
        (o, "out-3"),
    )
    scenario = Scenario(output=output)

    async def body() -> tuple[list[LogLine], object]:
        handle = await backend.executor.launch(backend.request(scenario))
        lines, outcome = await asyncio.gather(
            _collect(backend.executor.logs(handle)), backend.executor.wait(handle, 60)
        )
        await backend.executor.remove(handle)
        return lines, outcome

    lines, outcome = run(body())  # type: ignore[misc]
    assert outcome.state is RunState.SUCCEEDED and outcome.exit_code == 0
    expected_out = [t for s, t in scenario.output if s is Stream.STDOUT]
    expected_err = [t for s, t in scenario.output if s is Stream.STDERR]
    assert [line.text for line in lines if line.stream is Stream.STDOUT] == expected_out
    assert [line.text for line in lines if line.stream is Stream.STDERR] == expected_err
    stamps = [line.at for line in lines if line.stream is Stream.STDOUT]
    assert stamps == sorted(stamps)


def test_nonzero_exit_is_failed_with_its_code(backend: Backend) -> None:
    async def body() -> object:
        handle = await backend.executor.launch(backend.request(Scenario(exit_code=3)))
        outcome = await backend.executor.wait(handle, 60)
        await backend.executor.remove(handle)
        return outcome

    outcome = run(body())
    assert outcome.state is RunState.FAILED  # type: ignore[attr-defined]
    assert outcome.exit_code == 3  # type: ignore[attr-defined]


def test_deadline_kills_the_attempt_as_timed_out(backend: Backend) -> None:
    async def body() -> object:
        handle = await backend.executor.launch(backend.request(Scenario(hang=True), timeout_s=2))
        outcome = await backend.executor.wait(handle, 2)
        await backend.executor.remove(handle)
        return outcome

    outcome = run(body())
    assert outcome.state is RunState.TIMED_OUT  # type: ignore[attr-defined]
    # killed at the deadline, measured by the engine's own start and finish times
    assert 2.0 <= outcome.duration_s <= 3.0  # type: ignore[attr-defined]


def test_cancel_ends_a_running_attempt_as_cancelled(backend: Backend) -> None:
    async def body() -> tuple[object, object]:
        handle = await backend.executor.launch(
            backend.request(Scenario(output=((Stream.STDOUT, "started"),), hang=True))
        )
        before = await _first_line_then_outcome(backend.executor, handle)
        await backend.executor.cancel(handle)
        outcome = await backend.executor.wait(handle, 60)
        await backend.executor.remove(handle)
        return before, outcome

    before, outcome = run(body())  # type: ignore[misc]
    assert before is None
    assert outcome.state is RunState.CANCELLED


async def _first_line_then_outcome(executor: Executor, handle: RunHandle) -> object:
    async for _line in executor.logs(handle):
        break
    return await executor.outcome(handle)


def test_memory_over_the_limit_is_oom(backend: Backend) -> None:
    async def body() -> object:
        handle = await backend.executor.launch(backend.request(Scenario(oom=True)))
        outcome = await backend.executor.wait(handle, 120)
        await backend.executor.remove(handle)
        return outcome

    outcome = run(body())
    assert outcome.state is RunState.OOM, outcome  # type: ignore[attr-defined]


def test_list_managed_reads_runs_back_from_labels_until_removed(backend: Backend) -> None:
    async def body() -> tuple[list[object], list[object], list[object]]:
        request = backend.request(Scenario(output=((Stream.STDOUT, "hi"),)))
        handle = await backend.executor.launch(request)
        await backend.executor.wait(handle, 60)
        found = [m for m in await backend.executor.list_managed() if m.run_id == request.run_id]
        again = await backend.executor.launch(request)  # the same attempt cannot start twice
        assert again.ref == handle.ref
        adopted = await backend.executor.adopt(found[0])
        outcome = await backend.executor.outcome(adopted)
        await backend.executor.remove(adopted)
        after = [m for m in await backend.executor.list_managed() if m.run_id == request.run_id]
        return found, [outcome], after

    found, (outcome,), after = run(body())  # type: ignore[misc]
    assert len(found) == 1
    managed = found[0]
    assert (managed.pipeline, managed.trigger, managed.attempt, managed.running) == (
        "contract",
        Trigger.MANUAL,
        1,
        False,
    )
    assert outcome.state is RunState.SUCCEEDED
    assert after == []


def test_missing_image_fails_to_launch_with_the_image_named(backend: Backend) -> None:
    request = backend.request(Scenario(), image="fastflow-no-such-image:never")
    with pytest.raises(LaunchError, match="fastflow-no-such-image:never"):
        run(backend.executor.launch(request))


def test_secret_env_is_given_to_the_attempt_but_not_to_its_labels(backend: Backend) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    request = backend.request(Scenario())
    Path(request.workspace, "main.py").write_text(
        "import os\nprint(len(os.environ['API_TOKEN']))\n"
    )

    async def body() -> list[LogLine]:
        if isinstance(backend.executor, MemoryExecutor):
            backend.executor.programs[request.run_id] = Program(
                ((Stream.STDOUT, str(len(canary))),)
            )
        handle = await backend.executor.launch(request, {"API_TOKEN": canary})
        lines, _ = await asyncio.gather(
            _collect(backend.executor.logs(handle)), backend.executor.wait(handle, 60)
        )
        managed = [m for m in await backend.executor.list_managed() if m.run_id == request.run_id]
        assert canary not in repr(managed) and canary not in repr(handle)
        await backend.executor.remove(handle)
        return lines

    lines = run(body())
    assert [line.text for line in lines] == [str(len(canary))]  # type: ignore[attr-defined]
    assert os.environ.get("API_TOKEN") != canary
