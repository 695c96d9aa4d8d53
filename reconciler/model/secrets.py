"""A decrypted secret value: only ``reveal()`` gives the text; repr, str and format are masked."""

from __future__ import annotations

from typing import Any, NoReturn


class SecretValue:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue(***)"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("SecretValue", self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled")

    def __getstate__(self) -> Any:
        raise TypeError("a SecretValue cannot be serialized")
