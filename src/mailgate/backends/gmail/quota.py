"""Gmail's per-user quota, as a budget mailgate spends before it sends a request (pure).

Gmail charges every method a number of quota units ("Usage limits") against a per-user budget
of 250 units per second (a moving average that allows short bursts). mailgate keeps one
:class:`QuotaBudget` per account and process: a token bucket that a request waits on before it
is sent, so a busy account slows itself down instead of collecting 429s. When Google throttles
anyway (another client of the same app, another process), :meth:`QuotaBudget.pause` stops every
request of the account until the ``Retry-After`` moment.

Retry rules (:func:`retry_decision`): 429, 403 with a rate-limit reason, and 500/502/503/504 are
retried with exponential backoff and full jitter, honouring ``Retry-After``; anything else is
final. Nothing here does I/O: time comes from the caller.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

#: Quota units per method (https://developers.google.com/gmail/api/reference/quota).
METHOD_UNITS: Mapping[str, int] = {
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
    "threads.get": 10,
    "threads.list": 10,
    "watch": 100,
}
#: Units of a method missing from the table.
DEFAULT_UNITS = 5
#: Gmail's per-user rate (units per second).
USER_UNITS_PER_SECOND = 250.0
#: The share of that rate one process spends on one account (others may use the same app).
DEFAULT_SHARE = 0.9
#: Seconds of budget the bucket holds (how long a burst may be).
BURST_SECONDS = 1.0
#: Longest pause a ``Retry-After`` can impose (a hostile or broken value is capped).
MAX_RETRY_AFTER = 120.0
#: First backoff delay and its cap, in seconds.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 32.0
#: Attempts of one request (the first one included) before giving up.
MAX_ATTEMPTS = 8

RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def units_of(method: str) -> int:
    """Quota units of a Gmail method (``"messages.get"``)."""
    return METHOD_UNITS.get(method, DEFAULT_UNITS)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    throttled: bool = False  # the account's budget must pause for ``delay``


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds only; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter for attempt ``attempt`` (1 = first retry)."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def is_rate_limit(status: int, reason: str | None) -> bool:
    return status == 429 or (status == 403 and (reason or "") in RATE_LIMIT_REASONS)


def retry_decision(
    status: int,
    reason: str | None,
    retry_after: str | None,
    attempt: int,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Whether attempt number ``attempt`` (1-based) that got ``status`` is tried again, when."""
    limited = is_rate_limit(status, reason)
    if not limited and status not in RETRY_STATUSES:
        return RetryDecision(False)
    if attempt >= max_attempts:
        return RetryDecision(False, throttled=limited)
    delay = backoff(attempt, rng)
    told = parse_retry_after(retry_after)
    if told is not None:
        delay = max(delay, told)
    return RetryDecision(True, delay, throttled=limited)


class QuotaBudget:
    """A token bucket of quota units for one account (time is passed in: pure and testable)."""

    def __init__(
        self,
        units_per_second: float = USER_UNITS_PER_SECOND * DEFAULT_SHARE,
        burst_seconds: float = BURST_SECONDS,
        now: float = 0.0,
    ) -> None:
        self.rate = units_per_second
        self.capacity = max(1.0, units_per_second * burst_seconds)
        self.level = self.capacity
        self.updated = now
        self.paused_until = 0.0
        self.spent = 0

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, units: int, now: float) -> float:
        """Seconds to wait before ``units`` may be spent (0: spend now)."""
        if now < self.paused_until:
            return self.paused_until - now
        self._refill(now)
        wanted = min(float(units), self.capacity)
        if self.level >= wanted:
            return 0.0
        return (wanted - self.level) / self.rate

    def take(self, units: int, now: float) -> float:
        """Spend ``units`` if they are there: returns 0.0, else the seconds to wait first."""
        wait = self.wait_time(units, now)
        if wait <= 0:
            self.level -= min(float(units), self.capacity)
            self.spent += units
        return wait

    def pause(self, seconds: float, now: float) -> None:
        """Google throttled this account: no request before ``now + seconds``, empty bucket."""
        self.paused_until = max(self.paused_until, now + seconds)
        self.level = 0.0
        self.updated = max(self.updated, self.paused_until)
