"""Unit tests for the foundation's pure parts: backoff, keys, crypto, listing, records."""

from __future__ import annotations

import msgspec
import pytest

from mailgate.backends.imap.listing import ListItem, join_path, to_mailboxes
from mailgate.domain.account import AccountRecord
from mailgate.errors import StoreError
from mailgate.runtime import backoff
from mailgate.runtime.logging import redact_secrets
from mailgate.services.accounts import account_view, build_record
from mailgate.services.inputs import AccountCreate, AccountUpdate
from mailgate.store import keys
from mailgate.store.accounts import map_secrets
from mailgate.store.crypto import SecretBox, hash_token, is_encrypted, new_token


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (0, 0.0, 2.0),
        (1, 0.0, 4.0),
        (3, 0.0, 16.0),
        (20, 0.0, 300.0),
        (0, 1.0, 1.0),
        (8, 1.0, 150.0),
    ],
)
def test_backoff_delays(attempt: int, rand: float, expected: float) -> None:
    got = backoff.delay_for(attempt, base=2.0, cap=300.0, rand=rand)
    assert got == pytest.approx(expected)


def test_backoff_resets_only_after_stable_connection() -> None:
    b = backoff.Backoff()
    for _ in range(5):
        b.next_delay()
    b.connection_lasted(backoff.STABLE_AFTER - 1)
    assert b.attempt == 5
    b.connection_lasted(backoff.STABLE_AFTER)
    assert b.attempt == 0


def test_auth_backoff_is_never_tight() -> None:
    b = backoff.Backoff(base=backoff.AUTH_BASE_DELAY, cap=backoff.AUTH_MAX_DELAY)
    delays = [b.next_delay() for _ in range(12)]
    assert min(delays) >= backoff.AUTH_BASE_DELAY * (1 - backoff.JITTER)
    assert max(delays) <= backoff.AUTH_MAX_DELAY


def test_account_keys_share_one_hash_tag() -> None:
    for key in keys.account_keys("acc:1"):
        assert "{acc:1}" in key
    assert keys.SETTINGS.startswith("mg:{mg}:")
    assert keys.token("abc").startswith("mg:{mg}:")


def test_secret_box_round_trip_and_wrong_key() -> None:
    box = SecretBox("one secret")
    sealed = box.encrypt("p@ss wörd")
    assert is_encrypted(sealed) and "p@ss" not in sealed
    assert box.decrypt(sealed) == "p@ss wörd"
    assert box.encrypt("same") != box.encrypt("same")  # random nonce
    with pytest.raises(StoreError):
        SecretBox("another secret").decrypt(sealed)
    assert box.decrypt("plain") == "plain"


def test_tokens_are_64_hex_and_hashed() -> None:
    token = new_token()
    assert len(token) == 64 and int(token, 16) >= 0
    assert hash_token(token) != token and len(hash_token(token)) == 64


def test_log_redaction() -> None:
    event = {"event": "login", "password": "x", "user": "u", "accessToken": "t"}
    out = redact_secrets(None, "info", event)
    assert out == {"event": "login", "password": "***", "user": "u", "accessToken": "***"}


def _items() -> list[ListItem]:
    return [
        ListItem("INBOX", "/", frozenset({"\\HasChildren"})),
        ListItem("INBOX/Sub", "/", frozenset({"\\HasNoChildren", "\\Subscribed"})),
        ListItem("Sent Items", "/", frozenset({"\\HasNoChildren"})),
        ListItem("Papierkorb", "/", frozenset({"\\Trash"})),
        ListItem("Trash", "/", frozenset()),
        ListItem("Archive", "/", frozenset({"\\Noselect", "\\NoInferiors"})),
        ListItem("Custom", "/", frozenset(), {"MESSAGES": 3, "UNSEEN": 1, "UIDNEXT": 9}),
    ]


def test_listing_special_use_sources_and_parents() -> None:
    boxes = {m.path: m for m in to_mailboxes(_items(), user_paths={"\\Junk": "Custom"})}
    assert boxes["INBOX"].special_use == "\\Inbox"
    assert boxes["INBOX/Sub"].parent_path == "INBOX" and boxes["INBOX/Sub"].name == "Sub"
    assert boxes["INBOX/Sub"].subscribed is True
    assert (boxes["Papierkorb"].special_use, boxes["Papierkorb"].special_use_source) == (
        "\\Trash",
        "extension",
    )
    assert boxes["Trash"].special_use is None  # the server named its Trash already
    assert (boxes["Sent Items"].special_use, boxes["Sent Items"].special_use_source) == (
        "\\Sent",
        "name",
    )
    assert boxes["Custom"].special_use == "\\Junk" and boxes["Custom"].special_use_source == "user"
    assert boxes["Archive"].no_select is True and boxes["Archive"].no_inferiors is True
    assert next(iter(boxes)) == "INBOX"


def test_listing_counters() -> None:
    boxes = {m.path: m for m in to_mailboxes(_items(), counters=True)}
    assert msgspec.to_builtins(boxes["Custom"].status) == {"messages": 3, "unseen": 1}
    assert boxes["Custom"].uid_next == 9
    assert boxes["INBOX"].status is not None and boxes["INBOX"].status.error


@pytest.mark.parametrize(
    ("path", "delim", "expected"),
    [(["A", "B"], "/", "A/B"), (["A", "B"], ".", "A.B"), ("A/B", ".", "A/B"), (["X"], None, "X")],
)
def test_join_path(path: str | list[str], delim: str | None, expected: str) -> None:
    assert join_path(path, delim) == expected


def _create(**kw: object) -> AccountCreate:
    base = {
        "account": "a1",
        "imap": {"host": "h", "port": 143, "secure": False, "auth": {"user": "u", "pass": "p"}},
        "smtp": {"host": "s", "port": 587, "auth": {"user": "u", "pass": "sp"}},
    }
    base.update(kw)
    return AccountCreate.model_validate(base)


def test_build_record_and_partial_update() -> None:
    record = build_record("a1", _create(name="N"), None)
    assert record.imap is not None and record.imap.auth is not None
    assert record.imap.auth.pass_ == "p"
    upd = AccountUpdate.model_validate({"imap": {"partial": True, "port": 993, "secure": True}})
    merged = build_record("a1", upd, record)
    assert merged.imap is not None and merged.imap.port == 993 and merged.imap.host == "h"
    assert merged.imap.auth is not None and merged.imap.auth.pass_ == "p"
    assert merged.name == "N" and merged.smtp == record.smtp
    replaced = build_record(
        "a1", AccountUpdate.model_validate({"imap": {"host": "new", "port": 143}}), record
    )
    assert replaced.imap is not None and replaced.imap.auth is None
    removed = build_record("a1", AccountUpdate.model_validate({"smtp": False}), record)
    assert removed.smtp is None


def test_account_view_masks_every_secret() -> None:
    record = build_record(
        "a1", _create(oauth2={"provider": "app", "accessToken": "AT", "refreshToken": "RT"}), None
    )
    from mailgate.domain.account import RuntimeState

    view = account_view(record, RuntimeState(), "full")
    text = str(view)
    for secret in ("'p'", "'sp'", "AT", "RT"):
        assert secret not in text
    assert view["imap"]["auth"]["pass"] == "******"
    assert view["imapIndexer"] == "full"


def test_map_secrets_touches_only_secrets() -> None:
    record = AccountRecord(account="x", name="Name")
    assert map_secrets(record, str.upper) == record
