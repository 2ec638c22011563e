"""Accounts and mailboxes over HTTP against a real Dovecot and a real Redis."""

from __future__ import annotations

import imaplib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import MailUser
from tests.integration.helpers import imap_account, wait_state
from tests.servers.dovecot import Dovecot
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer, sync_client

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def register(mailgate: MailgateProcess, dovecot: Dovecot, user: MailUser, **extra: Any) -> str:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    body = imap_account(account, user.name, user.password, dovecot.host, dovecot.imap_port, **extra)
    with mailgate.client() as http:
        resp = http.post("/v1/account", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"account": account, "state": "new"}
    return account


def imap_login(dovecot: Dovecot, user: MailUser) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    conn.login(user.name, user.password)
    return conn


def test_account_connects_and_masks_secrets(
    mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser, redis_server: RedisServer
) -> None:
    account = register(mailgate, dovecot, mail_user, imapIndexer="fast")
    with mailgate.client() as http:
        info = wait_state(http, account, "connected")
        assert info["account"] == account
        assert info["imap"]["auth"] == {"user": mail_user.name, "pass": "******"}
        assert info["imapIndexer"] == "fast"
        assert info["type"] == "imap"
        assert mail_user.password not in str(info)

        listing = http.get("/v1/accounts", params={"state": "connected", "pageSize": 1000}).json()
        assert account in [a["account"] for a in listing["accounts"]]
        assert listing["state"] == "connected"
        by_query = http.get("/v1/accounts", params={"query": account}).json()
        assert [a["account"] for a in by_query["accounts"]] == [account]
        assert by_query["total"] == 1 and by_query["pages"] == 1

    # the password is encrypted at rest: it appears nowhere in Redis in plain text
    raw = sync_client(redis_server.url)
    try:
        for key in raw.scan_iter(f"mg:{{{account}}}:*"):
            if raw.type(key) == b"string":
                assert mail_user.password.encode() not in raw.get(key)
    finally:
        raw.close()


def test_registering_again_updates_and_delete_removes(
    mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser
) -> None:
    account = register(mailgate, dovecot, mail_user)
    with mailgate.client() as http:
        wait_state(http, account, "connected")
        again = imap_account(
            account, mail_user.name, mail_user.password, dovecot.host, dovecot.imap_port
        )
        again["name"] = "Renamed"
        resp = http.post("/v1/account", json=again)
        assert resp.json() == {"account": account, "state": "existing"}
        assert http.get(f"/v1/account/{account}").json()["name"] == "Renamed"

        resp = http.put(f"/v1/account/{account}", json={"name": "Third", "email": "x@example.test"})
        assert resp.status_code == 200 and resp.json() == {"account": account}
        info = http.get(f"/v1/account/{account}").json()
        assert (info["name"], info["email"]) == ("Third", "x@example.test")
        assert info["imap"]["auth"]["pass"] == "******"
        wait_state(http, account, "connected")

        assert http.delete(f"/v1/account/{account}").json() == {"account": account, "deleted": True}
        assert http.get(f"/v1/account/{account}").status_code == 404


def test_wrong_password_gives_authentication_error(
    mailgate: MailgateProcess, dovecot: Dovecot, user_factory: Callable[..., MailUser]
) -> None:
    user = user_factory()
    wrong = MailUser(user.name, "not-the-password")
    account = register(mailgate, dovecot, wrong)
    with mailgate.client() as http:
        info = wait_state(http, account, "authenticationError")
        assert info["lastError"]["response"]
        assert "not-the-password" not in str(info)
        # fixing the password through the API brings the account up
        resp = http.put(
            f"/v1/account/{account}",
            json={"imap": {"partial": True, "auth": {"user": user.name, "pass": user.password}}},
        )
        assert resp.status_code == 200, resp.text
        wait_state(http, account, "connected")


def test_mailboxes_list_create_rename_delete(
    mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser
) -> None:
    account = register(mailgate, dovecot, mail_user)
    with mailgate.client() as http:
        boxes = http.get(f"/v1/account/{account}/mailboxes").json()["mailboxes"]
        by_path = {b["path"]: b for b in boxes}
        assert by_path["INBOX"]["specialUse"] == "\\Inbox"
        assert by_path["Sent"]["specialUse"] == "\\Sent"
        assert by_path["Sent"]["specialUseSource"] == "extension"
        assert by_path["Trash"]["specialUse"] == "\\Trash"
        assert by_path["Sent"]["subscribed"] is True
        assert by_path["INBOX"]["delimiter"] == "/"
        assert "status" not in by_path["INBOX"]

        dovecot.deliver(mail_user.name, b"Subject: hi\r\nFrom: a@b.test\r\n\r\nhello\r\n")
        counted = http.get(f"/v1/account/{account}/mailboxes", params={"counters": "true"}).json()
        inbox = next(b for b in counted["mailboxes"] if b["path"] == "INBOX")
        assert inbox["status"] == {"messages": 1, "unseen": 1}

        # nested, non-ASCII, created from a list of segments
        created = http.post(
            f"/v1/account/{account}/mailbox", json={"path": ["Projekte", "Größe ✓"]}
        )
        assert created.status_code == 200, created.text
        assert created.json() == {"path": "Projekte/Größe ✓", "created": True}
        again = http.post(f"/v1/account/{account}/mailbox", json={"path": "Projekte/Größe ✓"})
        assert again.json()["created"] is False

        boxes = {
            b["path"]: b for b in http.get(f"/v1/account/{account}/mailboxes").json()["mailboxes"]
        }
        assert boxes["Projekte/Größe ✓"]["name"] == "Größe ✓"
        assert boxes["Projekte/Größe ✓"]["parentPath"] == "Projekte"

        # a second IMAP session sees the real (modified UTF-7) folder
        conn = imap_login(dovecot, mail_user)
        try:
            _, names = conn.list()
            assert any(b"Gr&APYA3w-e &JxM-" in n for n in names), names
        finally:
            conn.logout()

        renamed = http.put(
            f"/v1/account/{account}/mailbox",
            json={"path": "Projekte/Größe ✓", "newPath": ["Projekte", "Klein"]},
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["newPath"] == "Projekte/Klein"
        assert renamed.json()["renamed"] is True

        unsub = http.put(
            f"/v1/account/{account}/mailbox", json={"path": "Projekte/Klein", "subscribed": False}
        )
        assert unsub.json()["subscribed"] is False
        boxes = {
            b["path"]: b for b in http.get(f"/v1/account/{account}/mailboxes").json()["mailboxes"]
        }
        assert boxes["Projekte/Klein"]["subscribed"] is False
        assert "Projekte/Größe ✓" not in boxes

        deleted = http.request(
            "DELETE", f"/v1/account/{account}/mailbox", params={"path": "Projekte/Klein"}
        )
        assert deleted.json() == {"path": "Projekte/Klein", "deleted": True}
        missing = http.request(
            "DELETE", f"/v1/account/{account}/mailbox", params={"path": "Projekte/Klein"}
        )
        assert missing.status_code == 404
        assert missing.json()["code"] == "MailboxNotFound"


def test_special_use_alias_is_accepted_as_path(
    mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser
) -> None:
    account = register(mailgate, dovecot, mail_user)
    with mailgate.client() as http:
        resp = http.put(
            f"/v1/account/{account}/mailbox", json={"path": "\\Junk", "subscribed": False}
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["path"] == "Junk"
        resp = http.request(
            "DELETE", f"/v1/account/{account}/mailbox", params={"path": "\\Nothing"}
        )
        assert resp.status_code == 404


def test_verify_account(mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser) -> None:
    imap = {
        "host": dovecot.host,
        "port": dovecot.imap_port,
        "secure": False,
        "tls": {"rejectUnauthorized": False},
        "auth": {"user": mail_user.name, "pass": mail_user.password},
    }
    smtp = {
        "host": dovecot.host,
        "port": dovecot.submission_port,
        "secure": False,
        "tls": {"rejectUnauthorized": False},
        "auth": {"user": mail_user.name, "pass": mail_user.password},
    }
    with mailgate.client() as http:
        ok = http.post(
            "/v1/verifyAccount", json={"imap": imap, "smtp": smtp, "mailboxes": True}
        ).json()
        assert ok["imap"] == {"success": True}
        assert ok["smtp"] == {"success": True}
        assert "INBOX" in [m["path"] for m in ok["mailboxes"]]

        bad_auth = {**imap, "auth": {"user": mail_user.name, "pass": "wrong"}}
        bad = http.post("/v1/verifyAccount", json={"imap": bad_auth}).json()
        assert bad["imap"]["success"] is False
        assert bad["imap"]["code"] == "AUTHENTICATIONFAILED"

        closed = {**imap, "port": 1}
        down = http.post("/v1/verifyAccount", json={"imap": closed}).json()
        assert down["imap"]["success"] is False


def test_account_bound_token_reaches_only_its_account(
    mailgate: MailgateProcess, dovecot: Dovecot, user_factory: Callable[..., MailUser]
) -> None:
    mine = register(mailgate, dovecot, user_factory())
    other = register(mailgate, dovecot, user_factory())
    token = mailgate.issue_token("--account", mine)
    with mailgate.client(token=token) as http:
        assert http.get(f"/v1/account/{mine}").status_code == 200
        assert http.get(f"/v1/account/{mine}/mailboxes").status_code == 200
        denied = http.get(f"/v1/account/{other}")
        assert denied.status_code == 403
        assert http.get(f"/v1/account/{other}/mailboxes").status_code == 403
        assert http.get("/v1/accounts").status_code == 403
        assert http.get("/v1/tokens").status_code == 403
