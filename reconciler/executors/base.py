"""The executor interface: one contract for every backend (docker, swarm, memory; Kubernetes next).

A backend starts one attempt of a run, streams its log lines (stdout and stderr apart, with the
engine's timestamps), waits for it with a deadline, cancels it, reports its outcome, lists what it
still holds for this instance (adoption after a restart), and removes it once the outcome has been
recorded, never before.

Labels (ARCHITECTURE.md §4, contract) identify a run on the engine; ``labels_for`` builds them and
``run_from_labels`` reads them back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from reconciler.model.runs import (
    LogLine,
    ManagedRun,
    ResourceSample,
    RunOutcome,
    RunRequest,
    Trigger,
)

LABEL_MANAGED = "io.fastflow.managed"
LABEL_INSTANCE = "io.fastflow.instance"
LABEL_RUN_ID = "io.fastflow.run-id"
LABEL_PIPELINE = "io.fastflow.pipeline"
LABEL_COMMIT = "io.fastflow.commit"
LABEL_TRIGGER = "io.fastflow.trigger"
LABEL_ATTEMPT = "io.fastflow.attempt"
# beyond the contract: what adoption after a restart needs to finish the run the same way
LABEL_TIMEOUT = "io.fastflow.timeout-s"
LABEL_SCHEDULED_FOR = "io.fastflow.scheduled-for"


@dataclass(frozen=True)
class RunHandle:
    """A started attempt: the backend's reference plus the request it was started from."""

    ref: str
    request: RunRequest


class Executor(Protocol):
    """What the runtime needs from a backend. Every method is safe to call after a restart."""

    instance: str

    async def launch(
        self, request: RunRequest, secrets: Mapping[str, str] | None = None
    ) -> RunHandle:
        """Start the attempt. ``secrets`` are extra env values; they never appear in labels."""
        ...

    def logs(self, handle: RunHandle) -> AsyncIterator[LogLine]:
        """Log lines as they are written, from the beginning, until the attempt ends."""
        ...

    async def wait(self, handle: RunHandle, timeout_s: float | None = None) -> RunOutcome:
        """The outcome once the attempt ends; past ``timeout_s`` it is killed (``timed_out``)."""
        ...

    async def cancel(self, handle: RunHandle) -> None:
        """Stop the attempt; its outcome becomes ``cancelled``."""
        ...

    async def outcome(self, handle: RunHandle) -> RunOutcome | None:
        """The outcome of an attempt that already ended, ``None`` while it runs (for adoption)."""
        ...

    async def list_managed(self) -> list[ManagedRun]:
        """Every attempt of this instance the backend still holds, running or ended."""
        ...

    async def adopt(self, managed: ManagedRun) -> RunHandle:
        """A handle for an attempt found by ``list_managed``."""
        ...

    async def stats(self, handle: RunHandle) -> ResourceSample | None:
        """A resource reading of a running attempt, ``None`` when there is none (ended, unknown)."""
        ...

    async def remove(self, handle: RunHandle) -> None:
        """Forget the attempt (remove its container); call only after recording its outcome."""
        ...


def labels_for(request: RunRequest, instance: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: instance,
        LABEL_RUN_ID: request.run_id,
        LABEL_PIPELINE: request.pipeline,
        LABEL_COMMIT: request.commit,
        LABEL_TRIGGER: request.trigger.value,
        LABEL_ATTEMPT: str(request.attempt),
        LABEL_TIMEOUT: f"{request.timeout_s:g}",
        **(
            {LABEL_SCHEDULED_FOR: request.scheduled_for.isoformat()}
            if request.scheduled_for
            else {}
        ),
    }


def run_from_labels(ref: str, labels: Mapping[str, str], running: bool) -> ManagedRun | None:
    """Read a run back from its labels; ``None`` when they are incomplete or not ours."""
    try:
        return ManagedRun(
            ref=ref,
            run_id=labels[LABEL_RUN_ID],
            pipeline=labels[LABEL_PIPELINE],
            commit=labels[LABEL_COMMIT],
            trigger=Trigger(labels[LABEL_TRIGGER]),
            attempt=int(labels[LABEL_ATTEMPT]),
            running=running,
            timeout_s=float(labels.get(LABEL_TIMEOUT, "3600")),
            scheduled_for=datetime.fromisoformat(labels[LABEL_SCHEDULED_FOR])
            if LABEL_SCHEDULED_FOR in labels
            else None,
        )
    except (KeyError, ValueError):
        return None
