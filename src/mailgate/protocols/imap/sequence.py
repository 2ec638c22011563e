"""IMAP sequence sets (RFC 3501 ``sequence-set``): compress int lists, expand, match.

``compress([1, 2, 3, 5])`` → ``"1:3,5"``; ``expand("1:3,5")`` → ``[1, 2, 3, 5]``. ``*`` is only
meaningful to a server; :func:`expand` refuses it, :class:`SequenceMatcher` treats it as
"no upper bound".
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

from .limits import DEFAULT_LIMITS

__all__ = ["SequenceMatcher", "compress", "expand", "is_sequence_set"]

_SET_RE = re.compile(r"^(?:\d+|\*)(?::(?:\d+|\*))?(?:,(?:\d+|\*)(?::(?:\d+|\*))?)*$")


def is_sequence_set(text: str) -> bool:
    """True when ``text`` is a syntactically valid sequence set."""
    return bool(_SET_RE.match(text))


def compress(ids: Iterable[int]) -> str:
    """Render ids as a compact sequence set; duplicates dropped, ranges merged."""
    values = sorted(set(ids))
    if not values:
        raise ValueError("empty sequence set")
    if values[0] < 1:
        raise ValueError("sequence numbers and UIDs start at 1")
    parts: list[str] = []
    start = prev = values[0]
    for v in values[1:]:
        if v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = v
    parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def expand(
    text: str | bytes, *, limit: int = DEFAULT_LIMITS.max_sequence_set_expansion
) -> list[int]:
    """Expand a sequence set without ``*`` into ascending ids (ranges may be written high:low).

    Raises :class:`ValueError` on bad syntax, ``*``, or more than ``limit`` ids.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    out: list[int] = []
    total = 0
    for part in text.split(","):
        lo_s, sep, hi_s = part.partition(":")
        if not lo_s.isdigit() or (sep and not hi_s.isdigit()):
            raise ValueError(f"bad sequence set {text[:80]!r}")
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
        if lo > hi:
            lo, hi = hi, lo
        total += hi - lo + 1
        if total > limit:
            raise ValueError("sequence set expands beyond the limit")
        if lo == hi:
            out.append(lo)
        else:
            out.extend(range(lo, hi + 1))
    return out


class SequenceMatcher:
    """Membership test for a sequence set without expanding it (``*`` = unbounded)."""

    __slots__ = ("_highs", "_lows")

    def __init__(self, text: str) -> None:
        if not is_sequence_set(text):
            raise ValueError(f"bad sequence set {text[:80]!r}")
        unbounded = 2**63
        ranges: list[tuple[int, int]] = []
        for part in text.split(","):
            lo_s, sep, hi_s = part.partition(":")
            lo = unbounded if lo_s == "*" else int(lo_s)
            hi = (unbounded if hi_s == "*" else int(hi_s)) if sep else lo
            if lo > hi:
                lo, hi = hi, lo
            if lo == unbounded:  # a bare "*": the last message, whatever its number
                lo = 1
            ranges.append((lo, hi))
        ranges.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self._lows = [lo for lo, _ in merged]
        self._highs = [hi for _, hi in merged]

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        i = bisect.bisect_right(self._lows, value) - 1
        return i >= 0 and value <= self._highs[i]
