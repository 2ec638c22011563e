"""Gmail's per-user quota, request statistics and injected failures.

Units per method follow "Usage limits" (https://developers.google.com/workspace/gmail/api/reference/quota):
a per-user budget of quota units per second (250 for real Gmail, a moving average that allows
short bursts — here a token bucket holding ``burst_seconds`` worth of units). A request that
does not fit answers 429 ``userRateLimitExceeded`` with ``Retry-After`` and, every
``forbidden_every``-th time, 403 ``userRateLimitExceeded`` as Gmail also does ("Resolve a 403
error: User rate limit exceeded"). Batched requests count one by one ("Batching requests").
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

from .errors import GoogleError, injected, rate_limited
from .util import Clock

UNITS: dict[str, int] = {
    "drafts.create": 10,
    "drafts.delete": 10,
    "drafts.get": 5,
    "drafts.list": 5,
    "drafts.send": 100,
    "drafts.update": 15,
    "getProfile": 1,
    "history.list": 2,
    "labels.create": 5,
    "labels.delete": 5,
    "labels.get": 1,
    "labels.list": 1,
    "labels.patch": 5,
    "labels.update": 5,
    "messages.attachments.get": 5,
    "messages.batchDelete": 50,
    "messages.batchModify": 50,
    "messages.delete": 10,
    "messages.get": 5,
    "messages.import": 25,
    "messages.insert": 25,
    "messages.list": 5,
    "messages.modify": 5,
    "messages.send": 100,
    "messages.trash": 5,
    "messages.untrash": 5,
    "stop": 50,
    "threads.delete": 20,
    "threads.get": 10,
    "threads.list": 10,
    "threads.modify": 10,
    "threads.trash": 10,
    "threads.untrash": 10,
    "watch": 100,
}


@dataclass
class MethodStats:
    """Counters of one method for one user."""

    requests: int = 0
    units: int = 0
    throttled: int = 0
    failed: int = 0


@dataclass
class UserStats:
    """Counters of one user: totals and per method (``FakeGoogle.stats``)."""

    requests: int = 0
    units: int = 0
    throttled: int = 0
    failed: int = 0
    by_method: dict[str, MethodStats] = field(default_factory=dict)

    def method(self, name: str) -> MethodStats:
        """The counters of ``name`` (``"messages.get"`` …), zero if never called."""
        return self.by_method.get(name, MethodStats())


class Quota:
    """Token buckets per user, stats, and the ``fail_next`` queue. Thread-safe."""

    def __init__(
        self,
        clock: Clock,
        units_per_second: float | None = 250.0,
        burst_seconds: float = 1.0,
        forbidden_every: int = 4,
    ) -> None:
        self._clock = clock
        self.units_per_second = units_per_second
        self.burst_seconds = burst_seconds
        self.forbidden_every = forbidden_every
        self._level: dict[str, tuple[float, float]] = {}
        self._stats: dict[str, UserStats] = {}
        self._failures: deque[tuple[int, str | None]] = deque()
        self._throttle_count = 0
        self._lock = threading.Lock()

    def fail_next(self, n: int, status: int, user: str | None) -> None:
        """Make the next ``n`` Gmail requests (of ``user``, or anyone) answer ``status``."""
        with self._lock:
            self._failures.extend([(status, user)] * n)

    def stats(self, user: str) -> UserStats:
        """A copy of ``user``'s counters."""
        with self._lock:
            current = self._stats.get(user.lower(), UserStats())
            return UserStats(
                current.requests,
                current.units,
                current.throttled,
                current.failed,
                {k: MethodStats(**vars(v)) for k, v in current.by_method.items()},
            )

    def reset(self) -> None:
        """Clear counters, buckets and pending failures."""
        with self._lock:
            self._stats.clear()
            self._level.clear()
            self._failures.clear()

    def charge(self, user: str, method: str) -> None:
        """Count a request; raise the injected or rate-limit error if it must fail."""
        user = user.lower()
        units = UNITS.get(method, 1)
        with self._lock:
            stats = self._stats.setdefault(user, UserStats())
            per = stats.by_method.setdefault(method, MethodStats())
            stats.requests += 1
            per.requests += 1
            for index, (status, who) in enumerate(self._failures):
                if who is None or who.lower() == user:
                    del self._failures[index]
                    stats.failed += 1
                    per.failed += 1
                    raise injected(status)
            error = self._take(user, units)
            if error is not None:
                stats.throttled += 1
                per.throttled += 1
                raise error
            stats.units += units
            per.units += units

    def _take(self, user: str, units: int) -> GoogleError | None:
        rate = self.units_per_second
        if rate is None:
            return None
        capacity = max(rate * self.burst_seconds, float(units))
        now = self._clock.now()
        level, last = self._level.get(user, (capacity, now))
        level = min(capacity, level + (now - last) * rate)
        if level < units:
            self._level[user] = (level, now)
            self._throttle_count += 1
            wait = max(1, math.ceil((units - level) / rate))
            forbidden = (
                self.forbidden_every > 0 and self._throttle_count % self.forbidden_every == 0
            )
            return rate_limited(wait, forbidden_variant=forbidden)
        self._level[user] = (level - units, now)
        return None
