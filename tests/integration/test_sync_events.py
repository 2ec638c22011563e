"""The sync engine against a real Dovecot: every change becomes one event in the account's log."""

from __future__ import annotations

import imaplib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import MailUser
from tests.integration.helpers import (
    account_events,
    imap_account,
    wait_event,
    wait_for,
    wait_state,
)
from tests.servers.dovecot import Dovecot
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def message(subject: str, body: str = "hello") -> bytes:
    mid = f"<{uuid.uuid4().hex}@example.test>"
    return (
        f"From: Sender <sender@example.test>\r\nTo: rcpt@example.test\r\n"
        f"Subject: {subject}\r\nMessage-ID: {mid}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def register(mailgate: MailgateProcess, dovecot: Dovecot, user: MailUser, **extra: Any) -> str:
    account = f"sync-{uuid.uuid4().hex[:8]}"
    body = imap_account(account, user.name, user.password, dovecot.host, dovecot.imap_port, **extra)
    with mailgate.client() as http:
        assert http.post("/v1/account", json=body).status_code == 200
        wait_state(http, account, "connected")
    return account


def names(redis_url: str, account: str, event: str) -> list[dict[str, Any]]:
    return [e for e in account_events(redis_url, account) if e["event"] == event]


def imap(dovecot: Dovecot, user: MailUser) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    conn.login(user.name, user.password)
    return conn


@pytest.fixture
def synced(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    user_factory: Callable[..., MailUser],
    redis_server: RedisServer,
) -> Callable[..., tuple[str, MailUser]]:
    def make(**extra: Any) -> tuple[str, MailUser]:
        user = user_factory()
        dovecot.deliver(user.name, message("old mail, never announced"))
        account = register(mailgate, dovecot, user, **extra)
        wait_event(redis_server.url, account, "accountInitialized")
        return account, user

    return make


def test_new_mail_in_inbox_and_other_folders(
    synced: Callable[..., tuple[str, MailUser]], dovecot: Dovecot, redis_server: RedisServer
) -> None:
    account, user = synced()
    url = redis_server.url
    dovecot.deliver(user.name, message("to inbox"))
    ev = wait_event(url, account, "messageNew", where=lambda e: e["data"]["subject"] == "to inbox")
    assert ev["path"] == "INBOX" and ev["specialUse"] == "\\Inbox"
    data = ev["data"]
    assert data["unseen"] is True and data["from"]["address"] == "sender@example.test"
    assert data["messageId"].startswith("<") and data["id"] and data["uid"] >= 2
    assert data["to"] == [{"address": "rcpt@example.test"}]

    dovecot.deliver(user.name, message("to archive"), folder="Archivé/Überweisungen")
    ev = wait_event(
        url, account, "messageNew", where=lambda e: e["data"]["subject"] == "to archive"
    )
    assert ev["path"] == "Archivé/Überweisungen"

    # mail that existed before registration is never announced, and nothing twice
    subjects = [e["data"]["subject"] for e in names(url, account, "messageNew")]
    assert "old mail, never announced" not in subjects
    assert sorted(subjects) == ["to archive", "to inbox"]


def test_flag_changes_and_deletions_full_indexer(
    synced: Callable[..., tuple[str, MailUser]], dovecot: Dovecot, redis_server: RedisServer
) -> None:
    account, user = synced(imapIndexer="full")
    url = redis_server.url
    dovecot.deliver(user.name, message("flag me"))
    new = wait_event(url, account, "messageNew", where=lambda e: e["data"]["subject"] == "flag me")
    uid = new["data"]["uid"]
    conn = imap(dovecot, user)
    try:
        conn.select("INBOX")
        conn.uid("STORE", str(uid), "+FLAGS", "(\\Seen \\Flagged)")
        upd = wait_event(url, account, "messageUpdated", where=lambda e: e["data"]["uid"] == uid)
        assert upd["data"]["id"] == new["data"]["id"]
        flags = upd["data"]["changes"]["flags"]
        assert sorted(flags["added"]) == ["\\Flagged", "\\Seen"]
        assert "deleted" not in flags  # an empty side is left out, as EmailEngine does

        conn.uid("STORE", str(uid), "-FLAGS", "(\\Flagged)")
        wait_for(
            lambda: any(
                e["data"]["changes"]["flags"].get("deleted") == ["\\Flagged"]
                for e in names(url, account, "messageUpdated")
            ),
            what="flag removal event",
        )
        conn.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
        conn.expunge()
        gone = wait_event(url, account, "messageDeleted", where=lambda e: e["data"]["uid"] == uid)
        assert gone["data"]["id"] == new["data"]["id"]
        assert gone["path"] == "INBOX"
    finally:
        conn.logout()
    assert len(names(url, account, "messageDeleted")) == 1


def test_fast_indexer_reports_new_mail_only(
    synced: Callable[..., tuple[str, MailUser]], dovecot: Dovecot, redis_server: RedisServer
) -> None:
    account, user = synced(imapIndexer="fast")
    url = redis_server.url
    dovecot.deliver(user.name, message("fast one"))
    new = wait_event(url, account, "messageNew", where=lambda e: e["data"]["subject"] == "fast one")
    conn = imap(dovecot, user)
    try:
        conn.select("INBOX")
        conn.uid("STORE", str(new["data"]["uid"]), "+FLAGS", "(\\Seen)")
        conn.uid("STORE", str(new["data"]["uid"]), "+FLAGS", "(\\Deleted)")
        conn.expunge()
    finally:
        conn.logout()
    # a later message proves the changes above were seen by the account's sync
    dovecot.deliver(user.name, message("fast two"))
    wait_event(url, account, "messageNew", where=lambda e: e["data"]["subject"] == "fast two")
    assert names(url, account, "messageUpdated") == []
    assert names(url, account, "messageDeleted") == []


def test_folders_created_and_deleted(
    synced: Callable[..., tuple[str, MailUser]], dovecot: Dovecot, redis_server: RedisServer
) -> None:
    account, user = synced()
    url = redis_server.url
    conn = imap(dovecot, user)
    try:
        conn.create("Neu")
        ev = wait_event(url, account, "mailboxNew", where=lambda e: e["path"] == "Neu")
        assert ev["data"]["path"] == "Neu"
        conn.delete("Neu")
        wait_event(url, account, "mailboxDeleted", where=lambda e: e["path"] == "Neu")
    finally:
        conn.logout()


def test_uidvalidity_change_gives_mailbox_reset_without_replay(
    synced: Callable[..., tuple[str, MailUser]], dovecot: Dovecot, redis_server: RedisServer
) -> None:
    account, user = synced()
    url = redis_server.url
    for i in range(3):
        dovecot.deliver(user.name, message(f"kept {i}"), folder="Archivé")
    wait_for(
        lambda: len([e for e in names(url, account, "messageNew") if e["path"] == "Archivé"]) == 3,
        what="three messages in Archivé",
    )
    dovecot.doveadm(
        "mailbox", "update", "--uid-validity", str(int(time.time()) + 7), "-u", user.name, "Archivé"
    )
    dovecot.deliver(user.name, message("after reset"))  # wakes the account
    reset = wait_event(url, account, "mailboxReset", where=lambda e: e["path"] == "Archivé")
    assert reset["data"]["path"] == "Archivé"
    dovecot.deliver(user.name, message("later"), folder="Archivé")
    wait_event(url, account, "messageNew", where=lambda e: e["data"]["subject"] == "later")
    archived = [
        e["data"]["subject"] for e in names(url, account, "messageNew") if e["path"] == "Archivé"
    ]
    assert sorted(archived) == ["kept 0", "kept 1", "kept 2", "later"]  # no replay of old mail


def test_message_new_carries_text_and_headers_per_settings(
    synced: Callable[..., tuple[str, MailUser]],
    dovecot: Dovecot,
    redis_server: RedisServer,
    mailgate: MailgateProcess,
) -> None:
    account, user = synced()
    with mailgate.client() as http:
        http.post(
            "/v1/settings",
            json={
                "notifyText": True,
                "notifyTextSize": 1000,
                "notifyHeaders": ["Subject", "X-Custom"],
            },
        )
    try:
        raw = (
            "From: a@example.test\r\nTo: b@example.test\r\nSubject: with text\r\n"
            "X-Custom: value 1\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe aus K=F6ln\r\n"
            "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Grüße</p>\r\n--b1--\r\n"
        ).encode()
        dovecot.deliver(user.name, raw)
        ev = wait_event(
            redis_server.url,
            account,
            "messageNew",
            where=lambda e: e["data"]["subject"] == "with text",
        )
        data = ev["data"]
        assert data["headers"] == {"subject": ["with text"], "x-custom": ["value 1"]}
        assert data["text"]["plain"].strip() == "Grüße aus Köln"
        assert "<p>Grüße</p>" in data["text"]["html"]
        assert data["text"]["hasMore"] is False
        assert set(data["text"]["encodedSize"]) == {"plain", "html"}
    finally:
        with mailgate.client() as http:
            http.post(
                "/v1/settings", json={"notifyText": False, "notifyTextSize": 0, "notifyHeaders": []}
            )
