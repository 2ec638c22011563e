"""Reconnect delays: exponential with jitter, reset only after a connection stayed up a while."""

from __future__ import annotations

import random
from dataclasses import dataclass

BASE_DELAY = 2.0  # seconds before the first retry
MAX_DELAY = 300.0  # connect errors are retried at least every 5 minutes
AUTH_BASE_DELAY = 60.0  # refused credentials are retried slowly ...
AUTH_MAX_DELAY = 3600.0  # ... at most hourly, never in a tight loop
STABLE_AFTER = 180.0  # seconds a connection must stay up before the backoff resets
JITTER = 0.5  # the delay is drawn from [d * (1 - JITTER), d]


def delay_for(attempt: int, *, base: float, cap: float, rand: float | None = None) -> float:
    """Delay before retry number ``attempt`` (0-based)."""
    raw = min(cap, base * float(2 ** min(attempt, 30)))
    r: float = random.random() if rand is None else rand
    return raw * (1 - JITTER * r)


@dataclass
class Backoff:
    base: float = BASE_DELAY
    cap: float = MAX_DELAY
    attempt: int = 0

    def next_delay(self) -> float:
        delay = delay_for(self.attempt, base=self.base, cap=self.cap)
        self.attempt += 1
        return delay

    def connection_lasted(self, seconds: float) -> None:
        """Reset only when the connection stayed up long enough to count as healthy."""
        if seconds >= STABLE_AFTER:
            self.attempt = 0
