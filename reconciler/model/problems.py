"""Validation problems: data, not exceptions. Rendered compiler-style as ``path:line:col: message``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Problem(BaseModel):
    """One thing wrong in a desired-state repository, located in a file (1-based line and column).

    ``path`` is relative to the repository root. ``pipeline`` names the pipeline the problem
    belongs to, or is ``None`` for repository-wide problems (``fastflow.yaml``), which make the
    whole commit invalid.
    """

    model_config = ConfigDict(frozen=True)

    path: str
    line: int = 1
    col: int = 1
    message: str
    pipeline: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.col, self.message)
