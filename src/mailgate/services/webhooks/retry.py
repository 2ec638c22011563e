"""Retry rules for webhook delivery: pure functions, no I/O.

Exponential backoff starting at 5 s, no jitter, like EmailEngine's notify queue, but 12
attempts instead of its 10: the attempt after failed attempt ``n`` (1-based) waits
``base * 2 ** (n - 1)``, capped at an hour: 5, 10, 20, ... 2560, 3600 s, so the last retry happens
about 2.4 hours after the first attempt, and a receiver that is down for an hour loses nothing (EmailEngine's 10 attempts
give up after 42.6 minutes). A permanent failure (the
target is refused by the egress policy, the URL is unusable) is never retried.
"""

from __future__ import annotations

from enum import StrEnum

BASE_DELAY = 5.0  # seconds before the second attempt
MAX_ATTEMPTS = 12  # attempts per event, the first one included
MAX_DELAY = 3600.0  # no single wait is longer than an hour, whatever base and attempt


class Decision(StrEnum):
    DONE = "done"  # 2xx: advance the cursor
    RETRY = "retry"  # wait delay(attempt) and try the same event again
    GIVE_UP = "give_up"  # drop the event (log + counter) and go on with the next


def delay(attempt: int, base: float = BASE_DELAY) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    return min(MAX_DELAY, base * 2.0 ** min(attempt - 1, 32))


def decide(
    *, ok: bool, attempt: int, permanent: bool = False, max_attempts: int = MAX_ATTEMPTS
) -> Decision:
    """What to do after attempt number ``attempt`` (1-based) of one event."""
    if ok:
        return Decision.DONE
    if permanent or attempt >= max_attempts:
        return Decision.GIVE_UP
    return Decision.RETRY


def total_wait(max_attempts: int = MAX_ATTEMPTS, base: float = BASE_DELAY) -> float:
    """Seconds between the first and the last attempt of an event that never succeeds."""
    return sum(delay(n, base) for n in range(1, max_attempts))
