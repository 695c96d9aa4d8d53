"""Decrypt the secrets of a desired state: SOPS and Fernet files -> ``SecretValue`` per pipeline.

A file that cannot be decrypted quarantines its pipeline with a problem naming the file (and the
key, for Fernet) and the cause, never a value. Results are cached by the file's content digest,
so a reconcile pass runs ``sops`` only for files that changed. Decrypted values live in memory
only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.adapters import sops
from reconciler.adapters.fernet import ENV_KEYS, FernetKeys
from reconciler.core.quarantine import with_problems
from reconciler.core.sources import FERNET_FILE, PIPELINES_DIR, SOPS_FILE
from reconciler.core.yamlread import Mark, YamlError, read_yaml
from reconciler.errors import SecretError
from reconciler.model.desired import DesiredState, Pipeline
from reconciler.model.problems import Problem
from reconciler.model.secrets import SecretValue

logger = logging.getLogger(__name__)
ReadSecretFile = Callable[[Pipeline, str], bytes | None]


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
        self._cache: dict[tuple[str, str], dict[str, str] | list[tuple[str, Mark, str]]] = {}

    def unlock(
        self, state: DesiredState, read: ReadSecretFile
    ) -> tuple[DesiredState, dict[str, dict[str, SecretValue]]]:
        problems: list[Problem] = []
        values: dict[str, dict[str, SecretValue]] = {}
        for name, pipeline in state.pipelines.items():
            plain: dict[str, str] = {}
            for filename in pipeline.secret_files:
                if (filename == SOPS_FILE and not self.kinds.sops) or (
                    filename == FERNET_FILE and not self.kinds.fernet
                ):
                    continue
                data = read(pipeline, filename)
                result = self._decrypt(filename, data or b"")
                if isinstance(result, list):
                    problems += [_problem(name, filename, mark, text) for _, mark, text in result]
                else:
                    plain |= result
            granted = set(pipeline.granted_secrets)
            values[name] = {k: SecretValue(v) for k, v in sorted(plain.items()) if k in granted}
        new_state = with_problems(state, problems)
        return new_state, {n: v for n, v in values.items() if n in new_state.pipelines}

    def _decrypt(self, filename: str, data: bytes) -> dict[str, str] | list[tuple[str, Mark, str]]:
        key = (filename, hashlib.sha256(data).hexdigest())
        if key not in self._cache:
            self._cache[key] = (
                self._decrypt_sops(data) if filename == SOPS_FILE else self._decrypt_fernet(data)
            )
        return self._cache[key]

    def _decrypt_sops(self, data: bytes) -> dict[str, str] | list[tuple[str, Mark, str]]:
        try:
            return sops.decrypt(data, self.env)
        except SecretError as exc:
            return [(SOPS_FILE, Mark(1, 1), f"cannot decrypt: {exc}")]

    def _decrypt_fernet(self, data: bytes) -> dict[str, str] | list[tuple[str, Mark, str]]:
        try:
            doc = read_yaml(data)
        except YamlError as exc:
            return [(FERNET_FILE, exc.mark, exc.message)]
        tokens = doc.data if isinstance(doc.data, dict) else {}
        try:
            keys = FernetKeys.from_env(self.env)
        except SecretError as exc:
            return [(FERNET_FILE, Mark(1, 1), f"cannot decrypt: {exc}")]
        plain: dict[str, str] = {}
        failures: list[tuple[str, Mark, str]] = []
        for name, token in tokens.items():
            try:
                plain[name] = keys.decrypt(str(token))
            except SecretError as exc:
                failures.append(
                    (
                        FERNET_FILE,
                        doc.locate((name,), key=True),
                        f"secret {name!r}: cannot decrypt: {exc}",
                    )
                )
        return failures or plain


def _problem(pipeline: str, filename: str, mark: Mark, text: str) -> Problem:
    path = f"{PIPELINES_DIR}/{pipeline}/{filename}"
    return Problem(path=path, line=mark.line, col=mark.col, message=text, pipeline=pipeline)
