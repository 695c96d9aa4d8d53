"""Decrypt the secrets of a desired state: SOPS and Fernet files -> ``SecretValue`` per pipeline.

Each pipeline gets what it is granted: its own files' secrets (``pipelines/<name>/secrets.*``)
and the repo-level shared ones it names (``secrets/<group>.*``, see ``core.shared``). A file that
cannot be decrypted quarantines the pipelines that would receive from it, with a problem naming
the file (and the key, for Fernet) and the cause, never a value. Results are cached by the file's
content digest, so a reconcile pass runs ``sops`` only for files that changed, and a shared file
is decrypted once however many pipelines use it. Decrypted values live in memory only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.adapters import sops
from reconciler.adapters.fernet import ENV_KEYS, FernetKeys
from reconciler.core.quarantine import with_problems
from reconciler.core.sources import PIPELINES_DIR, ReadFile
from reconciler.core.yamlread import Mark, YamlError, read_yaml
from reconciler.errors import SecretError
from reconciler.model.desired import DesiredState
from reconciler.model.problems import Problem
from reconciler.model.secrets import SecretValue

logger = logging.getLogger(__name__)
KEEP_CALLS = 16  # decrypted files unused for this many unlock calls are forgotten


@dataclass(frozen=True)
class Decrypted:
    """One file's values, and its failures as (secret name or None for the file, where, why).
    The repr leaves the plain values out."""

    values: dict[str, str] = field(repr=False)
    failures: tuple[tuple[str | None, Mark, str], ...] = ()


@dataclass(frozen=True)
class Kinds:
    sops: bool = True
    fernet: bool = True

    @classmethod
    def configured(cls, env: Mapping[str, str] | None = None) -> Kinds:
        """Only the kinds whose keys are configured (what `fastflow validate` checks)."""
        source = os.environ if env is None else env
        return cls(sops=any(source.get(n) for n in sops.AGE_ENV), fernet=bool(source.get(ENV_KEYS)))


class Unlocker:
    def __init__(self, env: Mapping[str, str] | None = None, kinds: Kinds = Kinds()) -> None:
        self.env = dict(os.environ if env is None else env)
        self.kinds = kinds
        self._cache: dict[tuple[bool, str], Decrypted] = {}
        self._used: dict[tuple[bool, str], int] = {}  # cache key -> the unlock call that used it
        self._calls = 0

    def unlock(
        self, state: DesiredState, read: ReadFile
    ) -> tuple[DesiredState, dict[str, dict[str, SecretValue]]]:
        """``read(path)`` gives a repo-relative file of the commit ``state`` was loaded from."""
        self._calls += 1
        problems: list[Problem] = []
        values: dict[str, dict[str, SecretValue]] = {}
        for name, pipeline in state.pipelines.items():
            plain: dict[str, str] = {}
            granted = set(pipeline.granted_secrets)
            sources = [f"{PIPELINES_DIR}/{name}/{f}" for f in pipeline.secret_files]
            sources += sorted({path for path, _ in pipeline.shared_secrets.values()})
            for path in sources:
                is_sops = path.endswith(".sops.yaml")
                if not (self.kinds.sops if is_sops else self.kinds.fernet):
                    continue
                result = self._decrypt(is_sops, read(path) or b"")
                if path.startswith(f"{PIPELINES_DIR}/"):
                    wanted = set(result.values) | {k for k, _, _ in result.failures if k}
                else:  # a shared file: only the names this pipeline asked for from it
                    wanted = {k for k, (p, _) in pipeline.shared_secrets.items() if p == path}
                failures = [(m, t) for k, m, t in result.failures if k is None or k in wanted]
                problems += [_problem(name, path, mark, text) for mark, text in failures]
                if not failures:
                    plain |= {k: v for k, v in result.values.items() if k in wanted & granted}
            values[name] = {k: SecretValue(v) for k, v in sorted(plain.items())}
        self._forget_unused()
        new_state = with_problems(state, problems)
        return new_state, {n: v for n, v in values.items() if n in new_state.pipelines}

    def _forget_unused(self, calls: int = KEEP_CALLS) -> None:
        """Drop decrypted files no unlock used in the last ``calls`` calls: an old value of a
        rotated secret does not stay in memory for the life of the process."""
        for key in [k for k, used in self._used.items() if used <= self._calls - calls]:
            del self._used[key]
            self._cache.pop(key, None)

    def _decrypt(self, is_sops: bool, data: bytes) -> Decrypted:
        key = (is_sops, hashlib.sha256(data).hexdigest())
        self._used[key] = self._calls
        if key not in self._cache:
            self._cache[key] = self._decrypt_sops(data) if is_sops else self._decrypt_fernet(data)
        return self._cache[key]

    def _decrypt_sops(self, data: bytes) -> Decrypted:
        try:
            return Decrypted(sops.decrypt(data, self.env))
        except SecretError as exc:
            return Decrypted({}, ((None, Mark(1, 1), f"cannot decrypt: {exc}"),))

    def _decrypt_fernet(self, data: bytes) -> Decrypted:
        try:
            doc = read_yaml(data)
        except YamlError as exc:
            return Decrypted({}, ((None, exc.mark, exc.message),))
        tokens = doc.data if isinstance(doc.data, dict) else {}
        try:
            keys = FernetKeys.from_env(self.env)
        except SecretError as exc:
            return Decrypted({}, ((None, Mark(1, 1), f"cannot decrypt: {exc}"),))
        plain: dict[str, str] = {}
        failures: list[tuple[str | None, Mark, str]] = []
        for name, token in tokens.items():
            try:
                plain[str(name)] = keys.decrypt(str(token))
            except SecretError as exc:
                mark = doc.locate((name,), key=True)
                failures.append((str(name), mark, f"secret {name!r}: cannot decrypt: {exc}"))
        return Decrypted(plain, tuple(failures))


def _problem(pipeline: str, path: str, mark: Mark, text: str) -> Problem:
    return Problem(path=path, line=mark.line, col=mark.col, message=text, pipeline=pipeline)
