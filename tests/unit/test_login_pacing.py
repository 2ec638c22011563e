"""Login pacing per host: a token bucket (pure timing, no sleeping)."""

from __future__ import annotations

import pytest

from mailgate.backends.imap.pacing import HostPacer


def test_burst_then_rate() -> None:
    pacer = HostPacer(rate=10)
    delays = [pacer.delay("imap.example.com", 100.0) for _ in range(12)]
    assert delays[:10] == [0.0] * 10  # one second's worth at once
    assert delays[10] == pytest.approx(0.1) and delays[11] == pytest.approx(0.2)


def test_hosts_are_independent_and_tokens_refill() -> None:
    pacer = HostPacer(rate=2)
    assert pacer.delay("a", 0.0) == 0.0 and pacer.delay("a", 0.0) == 0.0
    assert pacer.delay("a", 0.0) == pytest.approx(0.5)
    assert pacer.delay("b", 0.0) == 0.0
    assert pacer.delay("a", 10.0) == 0.0  # refilled (capped at the burst size)


def test_zero_rate_turns_pacing_off() -> None:
    pacer = HostPacer(rate=0)
    assert all(pacer.delay("h", 0.0) == 0.0 for _ in range(100))
