"""Repo-level shared secrets: ``secrets/<group>.sops.yaml`` and ``secrets/<group>.fernet.yaml``.

A secret that several pipelines need (a warehouse password, an API token) lives once in
``secrets/`` instead of being copied into every pipeline folder. The rules:

* A pipeline receives a shared secret **only when its ``secrets:`` list names it**; the default
  (no ``secrets:``) is still "all of its own and nothing else", so adding a shared file never
  hands a value to a pipeline that did not ask.
* A name in the pipeline's own files wins over a shared one (a local override).
* A name defined in two shared files is an error for each pipeline that asks for it (which one
  was meant is not guessed); pipelines that do not ask are not affected.
* Problems in a shared file itself (YAML, not a SOPS file, bad names, a plain-text value in a
  Fernet file, a symlink, over the size limit) are repo-wide: like a broken ``fastflow.yaml``,
  the commit is not applied and the last applied state keeps running.

Only files directly in ``secrets/`` with one of the two suffixes count; anything else there (a
README) is ignored.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from reconciler.core.secretfiles import read_secret_names
from reconciler.core.sources import MAX_YAML_BYTES, SharedSource, shared_kind
from reconciler.core.yamlread import Mark
from reconciler.model.problems import Problem
from reconciler.model.specs import NAME_PATTERN


@dataclass(frozen=True)
class SharedSecrets:
    # name -> ((file path, digest of the ciphertext), ...) in path order; usually one entry
    names: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    def known(self) -> list[str]:
        return sorted(self.names)


def inspect_shared(source: SharedSource) -> SharedSecrets:
    names: dict[str, list[tuple[str, str]]] = {}
    problems: list[Problem] = []

    def problem(path: str, mark: Mark, text: str) -> None:
        problems.append(Problem(path=path, line=mark.line, col=mark.col, message=text))

    for item in sorted(source.files, key=lambda f: f.path):
        kind = shared_kind(posixpath.basename(item.path))
        if kind is None:
            continue
        group, is_sops = kind
        if not NAME_PATTERN.fullmatch(group):
            problem(
                item.path,
                Mark(1, 1),
                f"shared secrets group {group!r} must match {NAME_PATTERN.pattern}",
            )
            continue
        if item.is_link:
            problem(item.path, Mark(1, 1), "must be a regular file, not a symlink")
            continue
        if item.raw is None or item.size > MAX_YAML_BYTES:
            problem(
                item.path,
                Mark(1, 1),
                f"file is {item.size} bytes, over the {MAX_YAML_BYTES} byte limit",
            )
            continue
        found = read_secret_names(item.raw, is_sops=is_sops)
        for mark, text in found.problems:
            problem(item.path, mark, text)
        for name, digest in found.digests.items():
            names.setdefault(name, []).append((item.path, digest))
    return SharedSecrets({n: tuple(v) for n, v in names.items()}, tuple(problems))
