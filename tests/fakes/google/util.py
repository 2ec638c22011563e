"""Small shared pieces of the fake Google: a movable clock, base64url and id generators.

Nothing here speaks HTTP. ``Clock`` lets tests jump ahead (token expiry, Pub/Sub ack deadlines,
watch expiration) without sleeping.
"""

from __future__ import annotations

import base64
import itertools
import random
import threading
import time


class Clock:
    """Wall-clock time plus an offset the tests can move forward (``advance``)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the epoch, as the fake sees them."""
        return time.time() + self._offset

    def now_ms(self) -> int:
        """Milliseconds since the epoch (Gmail's ``internalDate``, watch ``expiration``)."""
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        """Move the fake's time forward by ``seconds``."""
        with self._lock:
            self._offset += seconds


def b64url(data: bytes) -> str:
    """Base64url with padding, as Gmail writes ``raw`` and ``body.data``."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def b64url_nopad(data: bytes) -> str:
    """Base64url without padding (JWT segments, opaque tokens)."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Decode base64url or standard base64, padded or not (Gmail accepts both)."""
    cleaned = "".join(text.split())
    cleaned = cleaned.replace("+", "-").replace("/", "_")
    cleaned += "=" * (-len(cleaned) % 4)
    return base64.urlsafe_b64decode(cleaned.encode("ascii"))


class IdSource:
    """Gmail-looking ids: 16 lowercase hex digits, increasing with time, globally unique.

    Real message and thread ids are hex renderings of a 64-bit number that grows with the
    time of creation; drafts are ``r`` followed by a signed decimal number.
    """

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._counter = itertools.count(1)
        self._base = 0x18F0_0000_0000_0000 + self._rng.randrange(1 << 40)
        self._lock = threading.Lock()

    def message_id(self) -> str:
        """A new message id (also the id of a thread it starts)."""
        with self._lock:
            step = next(self._counter) * 0x1000 + self._rng.randrange(0x1000)
        return f"{self._base + step:016x}"

    def draft_id(self) -> str:
        """A new draft id, e.g. ``r-5712399129384512345``."""
        with self._lock:
            return f"r-{self._rng.randrange(10**18, 10**19)}"

    def gap(self) -> int:
        """A random gap between history ids ("not contiguous, with random gaps")."""
        with self._lock:
            return self._rng.randint(1, 7)

    def token(self, nbytes: int = 24) -> str:
        """An opaque random token."""
        with self._lock:
            return b64url_nopad(self._rng.randbytes(nbytes))


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line (CRLF CRLF or LF LF, whichever comes first)."""
    found = [(i, sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := data.find(sep)) >= 0]
    if not found:
        return data, b""
    index, separator = min(found)
    return data[:index], data[index + len(separator) :]
