"""The desired state loaded from one commit: valid pipelines, quarantined ones, and problems."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model.problems import Problem
from reconciler.model.specs import PipelineSpec, RepoSettings


class Layout(StrEnum):
    """How a pipeline declares its dependencies (decides the `uv run` invocation)."""

    SCRIPT = "script"  # PEP 723 inline metadata (or none) in the entrypoint
    PROJECT = "project"  # pyproject.toml + uv.lock, run frozen
    REQUIREMENTS = "requirements"  # requirements.txt (Fast-Flow compatibility)


class Pipeline(BaseModel):
    """A valid pipeline at one commit. ``tree_id`` is the Git tree OID of its folder."""

    model_config = ConfigDict(frozen=True)

    name: str
    tree_id: str
    spec: PipelineSpec
    layout: Layout = Layout.SCRIPT
    secret_files: tuple[str, ...] = ()
    # name -> short digest of the *ciphertext*, so a plan can say "changed" without any value
    secret_digests: dict[str, str] = Field(default_factory=dict)
    # repo-level shared secrets this pipeline asked for: name -> (file, digest of the ciphertext)
    shared_secrets: dict[str, tuple[str, str]] = Field(default_factory=dict)

    @property
    def secret_names(self) -> tuple[str, ...]:
        """The names of its own secrets (its folder's files)."""
        return tuple(sorted(self.secret_digests))

    @property
    def granted_secrets(self) -> tuple[str, ...]:
        """The secret names this pipeline receives: its allow-list (own or shared), or all of its
        own when it has none. Shared secrets are never granted implicitly."""
        if self.spec.secrets is None:
            return self.secret_names
        return tuple(sorted(set(self.spec.secrets)))

    @property
    def received_digests(self) -> dict[str, str]:
        """Granted name -> digest of its ciphertext, own or shared (what a plan compares)."""
        found = {n: d for n, d in self.secret_digests.items() if n in self.granted_secrets}
        found |= {n: d for n, (_, d) in self.shared_secrets.items() if n not in found}
        return dict(sorted(found.items()))


class DesiredState(BaseModel):
    """Everything one commit asks for. ``invalid`` pipelines are quarantined, not applied."""

    model_config = ConfigDict(frozen=True)

    commit: str | None = None
    config_id: str = ""
    settings: RepoSettings = Field(default_factory=RepoSettings)
    pipelines: dict[str, Pipeline] = Field(default_factory=dict)
    invalid: dict[str, tuple[Problem, ...]] = Field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def repo_problems(self) -> tuple[Problem, ...]:
        """Problems outside any pipeline (``fastflow.yaml``): the commit cannot apply at all."""
        return tuple(p for p in self.problems if p.pipeline is None)
