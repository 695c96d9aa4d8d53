"""Fernet secrets: ``FASTFLOW_FERNET_KEYS`` holds keys newest first (comma-separated); values are
decrypted with any of them (``MultiFernet``) and encrypted with the newest, so a key rotates
without downtime: add the new key in front, run ``fastflow secrets rotate``, drop the old key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from reconciler.errors import SecretError

ENV_KEYS = "FASTFLOW_FERNET_KEYS"


class FernetKeys:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretError(f"no Fernet key configured (set {ENV_KEYS})")
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except (ValueError, TypeError):
            raise SecretError(f"{ENV_KEYS} holds something that is not a Fernet key") from None
        self.count = len(keys)

    def __repr__(self) -> str:
        return f"FernetKeys({self.count} keys)"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FernetKeys:
        source = os.environ if env is None else env
        return cls([k for k in source.get(ENV_KEYS, "").split(",") if k.strip()])

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode("utf-8")
        except InvalidToken:
            raise SecretError(
                "no key in FASTFLOW_FERNET_KEYS decrypts it (wrong key or damaged token)"
            ) from None
        except UnicodeDecodeError:
            raise SecretError("the decrypted value is not UTF-8 text") from None

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode()

    def rotate(self, token: str) -> str:
        """The same value, encrypted with the newest key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretError(
                "no key in FASTFLOW_FERNET_KEYS decrypts it (wrong key or damaged token)"
            ) from None


def generate_key() -> str:
    return Fernet.generate_key().decode()
