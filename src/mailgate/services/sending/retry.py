"""Retry rules for outgoing mail: what a failed delivery attempt means (pure, table-tested).

A failure is classified by its *provenance*, never by guessing from message text:

    provenance   what happened                                               decision
    ──────────   ─────────────────────────────────────────────────────────   ──────────────────
    REPLY        the server answered with a reply code: 5xx (not 503)        FAIL (permanent)
                                                           503 (bad sequence) RETRY
                                                           4xx, anything else RETRY
    NETWORK      connect, TLS, timeout, connection lost, before the          RETRY
                 message was committed (no DATA in flight)
    UNCERTAIN    the connection broke after the message was committed        UNCERTAIN
                 (DATA sent, no final reply): the server may have it         (never re-sent)
    CONFIG       our side cannot send this at all (no SMTP settings,         FAIL
                 account or gateway gone, no usable AUTH mechanism)

A RETRY on the last allowed attempt becomes FAIL. Backoff is exponential from ``base`` seconds
(doubling per attempt made, capped at :data:`MAX_DELAY`), deterministic so tests and the outbox
listing agree on ``nextAttempt``.
"""

from __future__ import annotations

from enum import StrEnum

from mailgate.backends.smtp.sender import Provenance

__all__ = ["Decision", "Provenance", "classify", "decide", "retry_delay"]

MAX_DELAY = 3600.0  # seconds: no retry waits longer than an hour
DEFAULT_BASE_DELAY = 5.0  # seconds before the first retry (the ``deliveryRetryDelay`` setting)
DEFAULT_ATTEMPTS = 10  # EmailEngine's ``deliveryAttempts`` default
BAD_SEQUENCE = 503  # "bad sequence of commands": our protocol state, not the message


class Decision(StrEnum):
    RETRY = "retry"
    FAIL = "fail"
    UNCERTAIN = "uncertain"


def classify(provenance: Provenance, code: int | None = None) -> Decision:
    """The decision for one failed attempt, ignoring how many attempts are left."""
    if provenance is Provenance.UNCERTAIN:
        return Decision.UNCERTAIN
    if provenance is Provenance.CONFIG:
        return Decision.FAIL
    if provenance is Provenance.REPLY and code is not None and 500 <= code <= 599:
        return Decision.RETRY if code == BAD_SEQUENCE else Decision.FAIL
    return Decision.RETRY


def decide(
    provenance: Provenance, code: int | None, *, attempts_made: int, max_attempts: int
) -> Decision:
    """The decision after attempt number ``attempts_made`` (1-based) failed."""
    decision = classify(provenance, code)
    if decision is Decision.RETRY and attempts_made >= max_attempts:
        return Decision.FAIL
    return decision


def retry_delay(attempts_made: int, *, base: float = DEFAULT_BASE_DELAY) -> float:
    """Seconds to wait after ``attempts_made`` (≥ 1) failed attempts: base, 2·base, 4·base..."""
    exponent = min(max(attempts_made - 1, 0), 30)
    return float(min(MAX_DELAY, base * (2**exponent)))
