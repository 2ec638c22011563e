"""Pure webhook payload rules: envelope bytes, headers, targets, event filter."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from mailgate import __version__
from mailgate.services.webhooks import payload, signing
from mailgate.services.webhooks.payload import AccountHooks, WebhookConfig

ENTRY: dict[str, Any] = {
    "account": "acct1",
    "date": "2024-05-01T10:00:00.000Z",
    "event": "messageNew",
    "path": "INBOX",
    "specialUse": "\\Inbox",
    "data": {"id": "AAAAAQAAAAE", "uid": 1, "subject": "Tere 🤡"},
}


def test_envelope_shape_and_key_order() -> None:
    raw = payload.body(ENTRY, "https://mail.example.com")
    doc = json.loads(raw)
    assert list(doc) == ["serviceUrl", "account", "date", "path", "specialUse", "event", "data"]
    assert doc["serviceUrl"] == "https://mail.example.com"
    assert doc["data"] == ENTRY["data"]
    assert "eventId" not in doc  # as EmailEngine: the id travels in a header
    assert "Tere 🤡".encode() in raw  # compact UTF-8, not \\u escapes


def test_envelope_omits_empty_path_and_special_use() -> None:
    entry = {**ENTRY, "event": "messageSent", "path": None, "specialUse": None}
    doc = json.loads(payload.body(entry, "http://x"))
    assert list(doc) == ["serviceUrl", "account", "date", "event", "data"]


def test_config_from_settings_defaults() -> None:
    cfg = WebhookConfig.from_settings(
        {
            "webhooksEnabled": True,
            "webhooks": " http://h/ ",
            "webhookEvents": ["*"],
            "serviceUrl": "http://s",
        }
    )
    assert cfg.enabled and cfg.url == "http://h/" and cfg.events is None and cfg.secret is None
    cfg = WebhookConfig.from_settings({"webhookEvents": ["messageNew"], "webhooks": ""})
    assert cfg.events == frozenset({"messageNew"}) and cfg.url is None and not cfg.enabled


@pytest.mark.parametrize(
    ("events", "event", "wanted"),
    [
        (None, "messageNew", True),
        (frozenset({"messageNew"}), "messageNew", True),
        (frozenset({"messageNew"}), "messageDeleted", False),
        (frozenset(), "messageNew", False),
    ],
)
def test_event_filter(events: frozenset[str] | None, event: str, wanted: bool) -> None:
    cfg = WebhookConfig(enabled=True, url="http://h", events=events)
    assert payload.wanted(event, "INBOX", None, {}, cfg) is wanted


@pytest.mark.parametrize(
    ("path", "special_use", "data", "wanted"),
    [
        ("INBOX", None, {}, True),
        ("Other", "\\Inbox", {}, True),
        ("[Gmail]/All Mail", None, {"labels": ["\\Inbox"]}, True),
        ("Other", None, {"messageSpecialUse": "\\Inbox"}, True),
        ("Archive", None, {}, False),
    ],
)
def test_inbox_new_only(
    path: str, special_use: str | None, data: dict[str, Any], wanted: bool
) -> None:
    cfg = WebhookConfig(enabled=True, url="http://h", inbox_new_only=True)
    assert payload.wanted("messageNew", path, special_use, data, cfg) is wanted
    assert payload.wanted("messageDeleted", path, special_use, data, cfg)


@pytest.mark.parametrize(
    ("enabled", "global_url", "account_url", "target"),
    [
        (True, "http://global/", None, "http://global/"),
        (True, "http://global/", "http://acct/", "http://acct/"),  # instead of the global one
        (True, None, "http://acct/", "http://acct/"),
        (True, None, None, None),
        (False, "http://global/", "http://acct/", None),  # webhooksEnabled is the master switch
    ],
)
def test_targets(
    enabled: bool, global_url: str | None, account_url: str | None, target: str | None
) -> None:
    cfg = WebhookConfig(enabled=enabled, url=global_url)
    assert payload.target_url(cfg, AccountHooks(url=account_url)) == target


def test_headers_of_an_attempt() -> None:
    raw = payload.body(ENTRY, "http://s")
    event_id = "1714557600000-0"
    cfg = WebhookConfig(
        enabled=True,
        url="http://h/",
        secret="s3cret",
        custom_headers=(("X-Global", "g"), ("X-Both", "global"), ("Content-Type", "text/plain")),
    )
    hooks = AccountHooks(
        custom_headers=(("x-both", "account"), ("X-EE-Wh-Signature", "forged"), ("Bad\nName", "v"))
    )
    req = payload.build_request(
        "https://u%40x:p%3Aw@h.example.com/hook?q=1",
        raw,
        account_id="acct1",
        event_id=event_id,
        attempt=3,
        cfg=cfg,
        account=hooks,
        now_ms=1714557605400,
    )
    assert req.url == "https://h.example.com/hook?q=1"
    h = req.headers
    assert h["Authorization"] == "Basic " + base64.b64encode(b"u@x:p:w").decode()
    assert h["User-Agent"] == f"mailgate/{__version__}"
    assert h["Content-Type"] == "application/json"
    assert h["X-Global"] == "g"
    assert h["x-both"] == "account" and "X-Both" not in h
    assert h["X-EE-Wh-Event-Id"] == payload.event_uuid("acct1", event_id)
    assert h["X-EE-Wh-Id"] == event_id
    assert h["X-EE-Wh-Attempts"] == "3" and h["X-EE-Wh-Attempts-Made"] == "2"
    assert h["X-EE-Wh-Queued-Time"] == "5s"
    assert h["X-EE-Wh-Signature"] == signing.sign(raw, "s3cret")
    assert not any("\n" in k for k in h)


def test_no_signature_without_secret() -> None:
    req = payload.build_request(
        "http://h/",
        b"{}",
        account_id="a",
        event_id="1-0",
        attempt=1,
        cfg=WebhookConfig(enabled=True),
        account=AccountHooks(),
    )
    assert "X-EE-Wh-Signature" not in req.headers


def test_header_pairs_accepts_dicts_and_objects() -> None:
    class Pair:
        def __init__(self, key: str, value: str) -> None:
            self.key, self.value = key, value

    assert payload.header_pairs(
        [{"key": "A", "value": "1"}, Pair("B", "2"), {"value": "x"}, {"key": "C"}]
    ) == (
        ("A", "1"),
        ("B", "2"),
        ("C", ""),
    )
    assert payload.header_pairs(None) == ()


def test_event_ids_are_stable_and_unique_across_accounts() -> None:
    a = payload.event_uuid("alice", "1714557600000-0")
    assert a == payload.event_uuid("alice", "1714557600000-0")  # same on every retry/worker
    assert a != payload.event_uuid("bob", "1714557600000-0")  # stream ids repeat across accounts
    assert a != payload.event_uuid("alice", "1714557600000-1")
    assert len(a) == 36 and a[14] == "5"  # a UUIDv5, like EmailEngine's UUID event ids
