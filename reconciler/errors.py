"""The error tree of Fast-Flow.

    FastflowError
    ├── PermanentError          waits for a new commit or new input; retrying changes nothing
    │   ├── InvalidInputError   user input is wrong (bad revision, unreadable repository path)
    │   ├── SecretError         a secret cannot be decrypted (names file and key, never a value)
    │   └── LaunchError         the engine refuses this run (image missing, proxy says 403, ...)
    └── TemporaryError(delay_s) the world is not ready yet; retry after ``delay_s`` seconds
        ├── SourceUnavailableError   a remote or repository cannot be read right now
        └── ExecutorUnavailableError the Docker engine or its proxy does not answer

Validation problems in a desired-state repository are *data* (``model.problems.Problem``), not
exceptions: one commit carries many of them and loading never stops at the first.
"""

from __future__ import annotations


class FastflowError(Exception):
    """Base of every error Fast-Flow raises on purpose."""


class PermanentError(FastflowError):
    """Retrying will not help until the input changes."""


class InvalidInputError(PermanentError):
    """The user asked for something that does not exist or cannot be read."""


class SecretError(PermanentError):
    """A secret file or value cannot be used; the message never contains a value."""


class LaunchError(PermanentError):
    """The backend cannot start this run as asked; the message names the cause."""


class TemporaryError(FastflowError):
    """A transient failure; the caller should retry after ``delay_s`` seconds."""

    def __init__(self, message: str, *, delay_s: float = 5.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class SourceUnavailableError(TemporaryError):
    """The Git source cannot be read right now."""


class ExecutorUnavailableError(TemporaryError):
    """The container engine (or the proxy in front of it) does not answer."""
