"""Idempotency-Key handling and the submit inputs that decide what is queued."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mailgate.errors import BadRequest
from mailgate.services.sending.outbox import (
    MAX_IDEMPOTENCY_KEY,
    Job,
    JobState,
    _flat,
    idempotency_hash,
    iso_ms,
    job_view,
    replayed,
)
from mailgate.services.sending.submit import parse_send_at
from mailgate.store import keys


def test_key_is_hashed_and_stable() -> None:
    assert idempotency_hash("order-1") == idempotency_hash("order-1")
    assert idempotency_hash("order-1") != idempotency_hash("order-2")
    assert idempotency_hash(" order-1 ") == idempotency_hash("order-1")  # header whitespace
    assert len(idempotency_hash("x" * MAX_IDEMPOTENCY_KEY)) == 64


@pytest.mark.parametrize("bad", ["", "   ", "x" * (MAX_IDEMPOTENCY_KEY + 1), "a\x00b", "a\nb"])
def test_bad_keys_are_refused(bad: str) -> None:
    with pytest.raises(BadRequest):
        idempotency_hash(bad)


def test_key_names_are_per_account_in_the_outbox_slot() -> None:
    a = keys.idempotency("acct-a", idempotency_hash("k"))
    b = keys.idempotency("acct-b", idempotency_hash("k"))
    assert a != b
    # same hash slot as the outbox keys, so one script can claim the key with the job
    assert a.startswith("mg:{mg}:") and keys.OUTBOX_DUE.startswith("mg:{mg}:")
    assert keys.outbox_job("q").startswith("mg:{mg}:")


def test_replay_returns_first_reply_marked_hit() -> None:
    first = {
        "response": "Queued for delivery",
        "messageId": "<a@b>",
        "queueId": "q1",
        "sendAt": "2026-01-01T00:00:00.000Z",
        "idempotency": {"key": "k", "status": "MISS"},
    }
    again = replayed(json.dumps(first).encode(), "k")
    assert again == {**first, "idempotency": {"key": "k", "status": "HIT"}}


def test_flat_fields_skip_none_and_encode_values() -> None:
    flat = _flat({"a": None, "b": True, "c": False, "d": 3, "e": {"x": [1]}, "f": "s"})
    assert flat == ["b", "1", "c", "0", "d", "3", "e", '{"x":[1]}', "f", "s"]


def test_send_at_parsing() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_send_at(None) is None
    assert parse_send_at("2026-01-01T00:00:10.500Z", now) == int(now.timestamp() * 1000) + 10_500
    assert parse_send_at("2026-01-01T02:00:00+02:00", now) == int(now.timestamp() * 1000)
    with pytest.raises(BadRequest):
        parse_send_at("tomorrow", now)
    with pytest.raises(BadRequest):
        parse_send_at("2030-01-01T00:00:00Z", now)


def test_job_view_shape() -> None:
    job = Job(
        "q1",
        {
            "account": "a",
            "state": JobState.QUEUED.value,
            "created": "1000",
            "scheduled": "2000",
            "attempts": "10",
            "attemptsMade": "1",
            "nextAttempt": "3000",
            "envelope": '{"from":"a@b.c","to":["d@e.f"]}',
            "messageId": "<m@b.c>",
            "progress": '{"status":"error"}',
            "lastError": '{"message":"451 busy"}',
        },
    )
    view = job_view(job)
    assert view["queueId"] == "q1"
    assert view["scheduled"] == iso_ms(2000) == "1970-01-01T00:00:02.000Z"
    assert view["nextAttempt"] == "1970-01-01T00:00:03.000Z"
    assert view["attempts"] == 10 and view["attemptsMade"] == 1
    assert view["envelope"] == {"from": "a@b.c", "to": ["d@e.f"]}
    assert view["progress"] == {"status": "error"}
    assert view["gateway"] is None and view["source"] == "api"
