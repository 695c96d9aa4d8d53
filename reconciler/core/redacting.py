"""Mask secret values (``***``) in text: plain, JSON-escaped, URL-encoded and base64-encoded.

Base64 is matched at every byte alignment (a value inside a longer base64 stream encodes
differently depending on its offset), keeping only the characters that do not depend on the
neighbouring bytes, as CI systems do. Values shorter than ``MIN_LENGTH`` are not masked: they
would mask ordinary words (``fastflow secrets check`` warns about them).

``StreamRedactor`` masks text that arrives in chunks: it holds back a tail that could be the
start of a secret until the next chunk (or ``flush``) decides.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 4
MIN_BASE64 = 6


def _base64_forms(raw: bytes) -> set[str]:
    exact = base64.b64encode(raw).decode()
    forms = {exact, exact.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = (offset * 4 + 2) // 3  # characters touched by the padding bytes in front
        end_bytes = (
            (offset + len(raw)) // 3 * 3
        )  # whole groups only: the tail depends on what follows
        stable = encoded[start : end_bytes // 3 * 4]
        if len(stable) >= MIN_BASE64:
            forms.add(stable)
            forms.add(stable.replace("+", "-").replace("/", "_"))
    return forms


def variants(value: str) -> set[str]:
    """Every form of ``value`` that gets masked."""
    if len(value) < MIN_LENGTH:
        return set()
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    forms |= _base64_forms(value.encode())
    for line in value.splitlines():  # a multi-line secret (a key file) printed line by line
        if len(line.strip()) >= 8:
            forms.add(line.strip())
    return {f for f in forms if len(f) >= MIN_LENGTH}


class Redactor:
    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            forms |= variants(value)
        self._forms = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in self._forms)) if self._forms else None
        )
        self.longest = len(self._forms[0]) if self._forms else 0

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __repr__(self) -> str:
        return f"Redactor({len(self._forms)} forms)"

    def redact(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def partial_tail(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of a masked form."""
        best = 0
        for form in self._forms:
            for size in range(min(len(form) - 1, len(text)), best, -1):
                if text.endswith(form[:size]):
                    best = size
                    break
        return best


class StreamRedactor:
    """Masks a stream of chunks; a secret split across two chunks is still masked."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self.redactor.redact(self._held + chunk)
        keep = self.redactor.partial_tail(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep] if keep else text

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self.redactor.redact(text)
