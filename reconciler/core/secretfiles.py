"""The key names of one secrets file, read without decrypting anything.

SOPS files and Fernet files keep their key names in clear text; only the values are encrypted.
The loader needs the names (allow-lists, env collisions, the plan) and a digest of each value's
*ciphertext* (so a plan can say "changed"), never a value. Used for a pipeline's own files
(``core.folders``) and for the repo-level shared files (``core.shared``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.yamlread import Mark, YamlError, read_yaml
from reconciler.model.specs import ENV_NAME_PATTERN

FERNET_PREFIX = "gAAAAA"  # version byte 0x80, base64url: every Fernet token starts like this


@dataclass
class SecretNames:
    digests: dict[str, str] = field(default_factory=dict)  # name -> digest of the ciphertext
    marks: dict[str, Mark] = field(default_factory=dict)  # name -> where its key is
    problems: list[tuple[Mark, str]] = field(default_factory=list)


def read_secret_names(raw: bytes, *, is_sops: bool) -> SecretNames:
    found = SecretNames()
    try:
        doc = read_yaml(raw)
    except YamlError as exc:
        found.problems.append((exc.mark, exc.message))
        return found
    data: Any = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        found.problems.append((Mark(1, 1), "the top level must be a mapping of keys to values"))
        return found
    if is_sops and not isinstance(data.get("sops"), dict):
        found.problems.append(
            (Mark(1, 1), "not a SOPS file (no 'sops' metadata); encrypt it with `sops --encrypt`")
        )
        return found
    for name, value in data.items():
        if is_sops and name == "sops":
            continue
        mark = doc.locate((name,), key=True)
        problem = _check(name, value, is_sops=is_sops)
        if problem:
            found.problems.append((mark, problem))
        else:
            found.digests[name] = hashlib.sha256(value.encode()).hexdigest()[:12]
            found.marks[name] = mark
    return found


def _check(name: Any, value: Any, *, is_sops: bool) -> str | None:
    if not isinstance(name, str) or not ENV_NAME_PATTERN.fullmatch(name):
        return f"secret name {name!r} is not a valid environment variable name"
    if not isinstance(value, str):
        # never echo the value: it may be a plain-text secret committed by mistake
        return f"secret {name!r}: the value must be a single string"
    if not is_sops and not value.startswith(FERNET_PREFIX):
        return (
            f"secret {name!r}: the value is not a Fernet token; "
            "encrypt it with `fastflow secrets encrypt`"
        )
    return None
