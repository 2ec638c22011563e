"""Pure webhook rules: retry delays and decisions, signatures."""

from __future__ import annotations

import base64

import pytest

from mailgate.services.webhooks import retry, signing
from mailgate.services.webhooks.retry import Decision


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (1, 5.0),
        (2, 10.0),
        (3, 20.0),
        (4, 40.0),
        (5, 80.0),
        (6, 160.0),
        (7, 320.0),
        (8, 640.0),
        (9, 1280.0),
    ],
)
def test_delay_table(attempt: int, expected: float) -> None:
    assert retry.delay(attempt) == expected


def test_delay_base_is_injectable_and_capped() -> None:
    assert retry.delay(1, base=0.01) == 0.01
    assert retry.delay(4, base=0.01) == pytest.approx(0.08)
    assert retry.delay(100) == retry.MAX_DELAY
    with pytest.raises(ValueError):
        retry.delay(0)


def test_total_wait_of_the_default_rules() -> None:
    # 12 attempts, 11 waits of 5 s doubling, none over an hour: about 2.4 hours in all, so a
    # receiver that is down for an hour loses nothing
    assert retry.total_wait() == sum(min(3600, 5 * 2**k) for k in range(11))
    assert retry.total_wait() > 3600


@pytest.mark.parametrize(
    ("ok", "attempt", "permanent", "decision"),
    [
        (True, 1, False, Decision.DONE),
        (True, 10, False, Decision.DONE),
        (False, 1, False, Decision.RETRY),
        (False, 11, False, Decision.RETRY),
        (False, 12, False, Decision.GIVE_UP),
        (False, 13, False, Decision.GIVE_UP),
        (False, 1, True, Decision.GIVE_UP),
    ],
)
def test_decide_table(ok: bool, attempt: int, permanent: bool, decision: Decision) -> None:
    assert retry.decide(ok=ok, attempt=attempt, permanent=permanent) is decision


def test_decide_with_fewer_attempts() -> None:
    assert retry.decide(ok=False, attempt=3, max_attempts=3) is Decision.GIVE_UP
    assert retry.decide(ok=False, attempt=2, max_attempts=3) is Decision.RETRY


# RFC 4231-style well-known vector: HMAC-SHA256(key="key", "The quick brown fox ...")
KNOWN_HEX = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


def test_signature_matches_a_hand_computed_hmac() -> None:
    body = b"The quick brown fox jumps over the lazy dog"
    expected = base64.urlsafe_b64encode(bytes.fromhex(KNOWN_HEX)).rstrip(b"=").decode()
    assert expected == "97yD9DBThCSxMpjmqm-xQ-9NWaFJRhdZl0edvC0aPNg"
    assert signing.sign(body, "key") == expected
    assert signing.verify(body, "key", expected)
    assert not signing.verify(body + b" ", "key", expected)
    assert not signing.verify(body, "other", expected)


def test_signature_is_base64url_without_padding() -> None:
    for n in range(40):
        sig = signing.sign(b"x" * n, "s3cret")
        assert "=" not in sig and "+" not in sig and "/" not in sig
        assert len(sig) == 43  # 32 bytes


def test_webhook_keys_share_the_right_hash_tags() -> None:
    from mailgate.store import keys

    account = "acc:1"
    tag = "{" + account + "}"
    for key in (keys.webhook_state(account), keys.webhook_lock(account), keys.events(account)):
        assert key[key.index("{") : key.index("}") + 1] == tag
    for key in (
        keys.WEBHOOK_PENDING,
        keys.WEBHOOK_RETRY,
        keys.WEBHOOK_COUNTERS,
        keys.WEBHOOK_WAKE,
        keys.WEBHOOK_RECOVERY_LOCK,
        keys.queue_paused("notify"),
    ):
        assert key[key.index("{") : key.index("}") + 1] == "{mg}"
