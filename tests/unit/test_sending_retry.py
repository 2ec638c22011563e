"""Retry rules of outgoing mail: provenance decides, never the message text."""

from __future__ import annotations

import pytest

from mailgate.services.sending.retry import (
    MAX_DELAY,
    Decision,
    Provenance,
    classify,
    decide,
    retry_delay,
)

R, N, U, C = Provenance.REPLY, Provenance.NETWORK, Provenance.UNCERTAIN, Provenance.CONFIG


@pytest.mark.parametrize(
    ("provenance", "code", "expected"),
    [
        (R, 550, Decision.FAIL),  # mailbox unavailable
        (R, 551, Decision.FAIL),
        (R, 552, Decision.FAIL),
        (R, 553, Decision.FAIL),
        (R, 554, Decision.FAIL),
        (R, 535, Decision.FAIL),  # authentication refused by a real reply
        (R, 500, Decision.FAIL),
        (R, 599, Decision.FAIL),
        (R, 503, Decision.RETRY),  # bad sequence: our protocol state, not the message
        (R, 421, Decision.RETRY),
        (R, 450, Decision.RETRY),
        (R, 451, Decision.RETRY),
        (R, 452, Decision.RETRY),
        (R, 454, Decision.RETRY),
        (R, 354, Decision.RETRY),  # an odd code is not proof of a permanent failure
        (R, None, Decision.RETRY),
        (N, None, Decision.RETRY),  # connect refused, TLS, timeout, disconnect before commit
        (N, 550, Decision.RETRY),  # provenance wins: a network error carries no reply
        (U, None, Decision.UNCERTAIN),  # broke after commit: never re-sent
        (U, 451, Decision.UNCERTAIN),
        (C, None, Decision.FAIL),
        (C, 451, Decision.FAIL),
    ],
)
def test_classify(provenance: Provenance, code: int | None, expected: Decision) -> None:
    assert classify(provenance, code) is expected


@pytest.mark.parametrize(
    ("provenance", "code", "made", "max_attempts", "expected"),
    [
        (R, 451, 1, 10, Decision.RETRY),
        (R, 451, 9, 10, Decision.RETRY),
        (R, 451, 10, 10, Decision.FAIL),  # attempts used up
        (R, 451, 11, 10, Decision.FAIL),
        (N, None, 1, 1, Decision.FAIL),
        (R, 550, 1, 10, Decision.FAIL),
        (U, None, 10, 10, Decision.UNCERTAIN),  # uncertainty is reported as such, always
    ],
)
def test_decide_counts_attempts(
    provenance: Provenance, code: int | None, made: int, max_attempts: int, expected: Decision
) -> None:
    assert decide(provenance, code, attempts_made=made, max_attempts=max_attempts) is expected


@pytest.mark.parametrize(
    ("made", "base", "expected"),
    [
        (1, 5.0, 5.0),
        (2, 5.0, 10.0),
        (3, 5.0, 20.0),
        (4, 0.2, 1.6),
        (0, 5.0, 5.0),
        (40, 5.0, MAX_DELAY),
    ],
)
def test_backoff_doubles_and_is_capped(made: int, base: float, expected: float) -> None:
    assert retry_delay(made, base=base) == pytest.approx(expected)
