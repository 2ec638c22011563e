"""Login pacing: at most N new IMAP logins per second per server host, per process.

When a process claims many accounts at once (a start, a failover), their first connections are
spread out so a mail server is not flooded with hundreds of logins in the same second. A token
bucket per host; waiting callers are served in order.
"""

from __future__ import annotations

import asyncio
import time

DEFAULT_LOGINS_PER_SECOND = 100.0  # per host and process (MAILGATE_LOGINS_PER_SECOND)
BURST_SECONDS = 1.0  # how much unused rate may be saved up for a burst


class HostPacer:
    """A token bucket per host: :meth:`wait` returns when a login to ``host`` may start."""

    def __init__(self, rate: float = DEFAULT_LOGINS_PER_SECOND) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # host -> (tokens, last refill)
        self._locks: dict[str, asyncio.Lock] = {}

    def delay(self, host: str, now: float) -> float:
        """Take one token for ``host`` at time ``now``; seconds the caller must wait first."""
        if self.rate <= 0:
            return 0.0
        capacity = max(1.0, self.rate * BURST_SECONDS)
        tokens, last = self._buckets.get(host, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * self.rate) - 1.0
        self._buckets[host] = (tokens, now)
        return 0.0 if tokens >= 0 else -tokens / self.rate

    async def wait(self, host: str) -> None:
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:  # first come, first served
            pause = self.delay(host.lower(), time.monotonic())
            if pause > 0:
                await asyncio.sleep(pause)


_PACER = HostPacer()


def configure(rate: float) -> None:
    """Set this process's login rate per host (0 turns pacing off)."""
    _PACER.rate = rate


def pacer() -> HostPacer:
    return _PACER
