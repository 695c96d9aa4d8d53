"""Units users type: durations (``30s``, ``15m``, ``1h30m``, ``1d``) and sizes (``512Mi``, ``1.5G``, ``2g``).

Sizes follow the tool a user most likely copied them from: ``Ki Mi Gi Ti`` are binary
(Kubernetes), upper-case ``K M G T`` are decimal (Kubernetes), lower-case ``k m g t`` (with an
optional ``b``) are binary as in ``docker run --memory 2g``. A bare number is bytes.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS_S = (86400, 3600, 60, 1)
MAX_DURATION = timedelta(days=3650)

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)")
_SIZE_FACTORS = {
    "": 1,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
    "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40,
    "b": 1, "B": 1,
}  # fmt: skip
MAX_SIZE = 2**50


def parse_duration(text: str) -> timedelta:
    """``'1h30m'`` -> ``timedelta(seconds=5400)``; raises ``ValueError`` with the reason."""
    stripped = text.strip()
    match = _DURATION.fullmatch(stripped)
    if not stripped or match is None or not any(match.groups()):
        raise ValueError(
            f"{text!r} is not a duration; use a number with a unit: 30s, 15m, 2h, 1d or 1h30m"
        )
    seconds = sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS_S, strict=True) if g)
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than the maximum of 3650d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The canonical short form: ``timedelta(seconds=5400)`` -> ``'1h30m'``; zero is ``'0s'``."""
    rest = int(value.total_seconds())
    parts = []
    for suffix, unit in zip("dhms", _UNITS_S, strict=True):
        count, rest = divmod(rest, unit)
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts) or "0s"


def parse_size(text: str | int) -> int:
    """``'512Mi'`` -> ``536870912``; raises ``ValueError`` with the reason."""
    if isinstance(text, int) and not isinstance(text, bool):
        number, suffix = float(text), ""
    else:
        match = _SIZE.fullmatch(str(text).strip())
        if match is None or match.group(2) not in _SIZE_FACTORS:
            raise ValueError(
                f"{text!r} is not a size; use a number with a unit: 512Mi, 1Gi, 1.5G or 2g"
            )
        number, suffix = float(match.group(1)), match.group(2)
    size = int(number * _SIZE_FACTORS[suffix])
    if size > MAX_SIZE:
        raise ValueError(f"{text!r} is larger than the maximum of 1Pi")
    return size


def format_size(size: int) -> str:
    """The shortest exact binary form: ``536870912`` -> ``'512Mi'``, ``1500`` -> ``'1500'``."""
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        factor = _SIZE_FACTORS[suffix]
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)
