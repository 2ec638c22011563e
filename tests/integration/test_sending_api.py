"""Sending against real servers: submit → outbox → SMTP (capture or Dovecot submission) → Sent.

What arrives at the SMTP capture is compared with what was asked for (headers, bodies,
attachments byte for byte); replies and forwards are checked on the IMAP side with imaplib.
"""

from __future__ import annotations

import base64
import imaplib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
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
from tests.servers.smtp import CapturedMessage, SmtpCapture

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

RETRY_DELAY = 0.2  # seconds: the deliveryRetryDelay setting for these tests


@pytest.fixture(scope="module", autouse=True)
def short_retries(mailgate: MailgateProcess) -> Iterator[None]:
    with mailgate.client() as http:
        resp = http.post("/v1/settings", json={"deliveryRetryDelay": RETRY_DELAY})
        assert resp.status_code == 200, resp.text
    yield
    with mailgate.client() as http:
        http.post("/v1/settings", json={"deliveryRetryDelay": 5})


def capture_account(http: httpx.Client, smtp_capture: SmtpCapture, **extra: Any) -> str:
    """A send-only account whose SMTP server is the capture (no AUTH)."""
    account = f"send-{uuid.uuid4().hex[:8]}"
    host, port = smtp_capture.address
    body = {
        "account": account,
        "name": "Sender Name",
        "email": f"{account}@example.test",
        "smtp": {"host": host, "port": port, "secure": False},
        **extra,
    }
    resp = http.post("/v1/account", json=body)
    assert resp.status_code == 200, resp.text
    return account


def dovecot_account(http: httpx.Client, dovecot: Dovecot, user: MailUser) -> str:
    """An IMAP account sending through Dovecot's submission service (relays to the capture)."""
    account = f"imap-{uuid.uuid4().hex[:8]}"
    body = imap_account(
        account,
        user.name,
        user.password,
        dovecot.host,
        dovecot.imap_port,
        smtp={
            "host": dovecot.host,
            "port": dovecot.submission_port,
            "secure": False,
            "tls": {"rejectUnauthorized": False},
            "auth": {"user": user.name, "pass": user.password},
        },
    )
    resp = http.post("/v1/account", json=body)
    assert resp.status_code == 200, resp.text
    wait_state(http, account, "connected")
    return account


def by_message_id(message_id: str) -> Callable[[CapturedMessage], bool]:
    def match(m: CapturedMessage) -> bool:
        return message_id.encode() in m.data.split(b"\r\n\r\n", 1)[0]

    return match


def submit(
    http: httpx.Client, account: str, body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    resp = http.post(f"/v1/account/{account}/submit", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def events_named(redis_url: str, account: str, name: str) -> list[dict[str, Any]]:
    return [e for e in account_events(redis_url, account) if e["event"] == name]


def imap(dovecot: Dovecot, user: MailUser) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    conn.login(user.name, user.password)
    return conn


def flags_of(dovecot: Dovecot, user: MailUser, folder: str, message_id: str) -> str:
    conn = imap(dovecot, user)
    try:
        conn.select(folder)
        _, data = conn.uid("SEARCH", "HEADER", "Message-ID", message_id)
        uids = data[0].split()
        if not uids:
            return ""
        _, fetched = conn.uid("FETCH", uids[0], "(FLAGS)")
        return str(fetched[0])
    finally:
        conn.logout()


def folder_has(dovecot: Dovecot, user: MailUser, folder: str, message_id: str) -> bool:
    conn = imap(dovecot, user)
    try:
        conn.select(folder)
        _, data = conn.uid("SEARCH", "HEADER", "Message-ID", message_id)
        return bool(data[0].split())
    finally:
        conn.logout()


def original_message(subject: str, *, attachment: bytes | None = None) -> tuple[bytes, str]:
    mid = f"<{uuid.uuid4().hex}@origin.test>"
    msg = EmailMessage()
    msg["From"] = "Origin Person <origin@origin.test>"
    msg["To"] = "someone@example.test, other@origin.test"
    msg["Cc"] = "cc-person@origin.test"
    msg["Subject"] = subject
    msg["Message-ID"] = mid
    msg["References"] = "<root@origin.test>"
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 +0000"
    msg.set_content("original body line 1\noriginal body line 2\n")
    if attachment is not None:
        msg.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename="data.bin"
        )
    return msg.as_bytes().replace(b"\n", b"\r\n"), mid


# ---- capture account: what arrives ------------------------------------------------------------


def test_submit_arrives_intact(
    mailgate: MailgateProcess, smtp_capture: SmtpCapture, redis_server: RedisServer
) -> None:
    blob = os.urandom(3000)
    gif = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACwAAAAAAQABAAACAkQBADs=")
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        reply = submit(
            http,
            account,
            {
                "to": [{"name": "Ünïcode Name", "address": "to@example.test"}],
                "cc": [{"address": "cc@example.test"}],
                "bcc": [{"address": "hidden@example.test"}],
                "replyTo": [{"address": "replies@example.test"}],
                "subject": "Grüße — a subject that is long enough to be folded by the generator ✓",
                "text": "Hello ✓\nSecond line\n",
                "html": '<p>Hello ✓</p><img src="cid:logo@x">',
                "headers": {"X-Custom": "custom value"},
                "attachments": [
                    {
                        "filename": "blob.bin",
                        "content": base64.b64encode(blob).decode(),
                        "contentType": "application/octet-stream",
                    },
                    {
                        "filename": "logo.gif",
                        "content": base64.b64encode(gif).decode(),
                        "contentType": "image/gif",
                        "cid": "logo@x",
                    },
                ],
            },
        )
    assert reply["response"] == "Queued for delivery"
    assert reply["queueId"] and reply["messageId"].endswith("@example.test>")
    [captured] = smtp_capture.wait_for(1, predicate=by_message_id(reply["messageId"]))
    assert captured.mail_from == f"{account}@example.test"
    assert set(captured.rcpt_tos) == {"to@example.test", "cc@example.test", "hidden@example.test"}
    msg = captured.message()
    assert "Bcc" not in msg
    assert msg["Subject"] == "Grüße — a subject that is long enough to be folded by the generator ✓"
    assert msg["To"].addresses[0].display_name == "Ünïcode Name"
    assert msg["From"].addresses[0].addr_spec == f"{account}@example.test"
    assert msg["From"].addresses[0].display_name == "Sender Name"
    assert msg["Reply-To"].addresses[0].addr_spec == "replies@example.test"
    assert msg["X-Custom"] == "custom value"
    assert msg["Message-ID"] == reply["messageId"]
    assert msg["Date"]
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    # text parts compare with line ends normalized (CRLF on the wire)
    assert text.get_content().replace("\r\n", "\n") == "Hello ✓\nSecond line\n"
    assert html.get_content().strip() == '<p>Hello ✓</p><img src="cid:logo@x">'
    parts = {p.get_filename(): p for p in msg.walk() if p.get_filename()}
    assert parts["blob.bin"].get_content() == blob
    assert parts["logo.gif"].get_content() == gif
    assert parts["logo.gif"]["Content-ID"] == "<logo@x>"
    # every line is CRLF-terminated and within the SMTP line limit
    assert b"\n" not in captured.data.replace(b"\r\n", b"")
    assert max(len(line) for line in captured.data.split(b"\r\n")) <= 998

    sent = wait_event(
        redis_server.url,
        account,
        "messageSent",
        where=lambda e: e["data"]["queueId"] == reply["queueId"],
    )
    assert sent["data"]["messageId"] == reply["messageId"]
    assert sent["data"]["response"].startswith("250")
    assert sent["data"]["envelope"]["from"] == f"{account}@example.test"


def test_raw_message_is_sent_byte_for_byte(
    mailgate: MailgateProcess, smtp_capture: SmtpCapture
) -> None:
    mid = f"<{uuid.uuid4().hex}@raw.test>"
    raw = (
        "From: Raw Sender <raw@raw.test>\r\nTo: rcpt@raw.test\r\nBcc: secret@raw.test\r\n"
        f"Subject: raw\r\nMessage-ID: {mid}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ".a line starting with a dot\r\nnon-ascii: ✓\r\n"
    ).encode()
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        reply = submit(http, account, {"raw": base64.b64encode(raw).decode()})
    assert reply["messageId"] == mid
    [captured] = smtp_capture.wait_for(1, predicate=by_message_id(mid))
    expected = raw.replace(b"Bcc: secret@raw.test\r\n", b"")
    assert captured.data == expected
    assert set(captured.rcpt_tos) == {"rcpt@raw.test", "secret@raw.test"}
    assert captured.mail_from == "raw@raw.test"


def test_envelope_override(mailgate: MailgateProcess, smtp_capture: SmtpCapture) -> None:
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        reply = submit(
            http,
            account,
            {
                "to": [{"address": "header-only@example.test"}],
                "subject": "envelope",
                "text": "x",
                "envelope": {"from": "bounce@example.test", "to": ["real@example.test"]},
            },
        )
    [captured] = smtp_capture.wait_for(1, predicate=by_message_id(reply["messageId"]))
    assert captured.mail_from == "bounce@example.test"
    assert captured.rcpt_tos == ("real@example.test",)
    assert captured.message()["To"] == "header-only@example.test"


def test_dry_run_builds_and_queues_nothing(
    mailgate: MailgateProcess, smtp_capture: SmtpCapture
) -> None:
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        reply = submit(
            http,
            account,
            {"to": [{"address": "a@example.test"}], "subject": "dry", "text": "x", "dryRun": True},
        )
        assert "queueId" not in reply
        preview = base64.b64decode(reply["preview"])
        assert b"Subject: dry" in preview
        assert reply["messageId"].encode() in preview
        # a later real message arrives; the dry run never does
        real = submit(http, account, {"to": [{"address": "a@example.test"}], "text": "real"})
    smtp_capture.wait_for(1, predicate=by_message_id(real["messageId"]))
    assert not [m for m in smtp_capture.messages if by_message_id(reply["messageId"])(m)]


def test_idempotency_key_queues_once(mailgate: MailgateProcess, smtp_capture: SmtpCapture) -> None:
    key = f"key-{uuid.uuid4().hex}"
    body = {"to": [{"address": "idem@example.test"}], "subject": "idem", "text": "x"}
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        first = submit(http, account, body, **{"Idempotency-Key": key})
        second = submit(http, account, {**body, "text": "changed"}, **{"Idempotency-Key": key})
        other = submit(http, account, body, **{"Idempotency-Key": key + "-other"})
    assert first["idempotency"] == {"key": key, "status": "MISS"}
    assert second["idempotency"] == {"key": key, "status": "HIT"}
    assert second["queueId"] == first["queueId"]
    assert second["messageId"] == first["messageId"]
    assert other["queueId"] != first["queueId"]
    smtp_capture.wait_for(1, predicate=by_message_id(other["messageId"]))
    smtp_capture.wait_for(1, predicate=by_message_id(first["messageId"]))
    # the later-queued "other" arrived, and the first key's message exactly once
    assert len([m for m in smtp_capture.messages if by_message_id(first["messageId"])(m)]) == 1


def test_transient_451_then_delivered(
    mailgate: MailgateProcess, smtp_capture: SmtpCapture, redis_server: RedisServer
) -> None:
    smtp_capture.force_reply("DATA", "451 4.3.0 Try again later")
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        reply = submit(http, account, {"to": [{"address": "r@example.test"}], "text": "retry"})
    smtp_capture.wait_for(1, predicate=by_message_id(reply["messageId"]))
    wait_event(redis_server.url, account, "messageSent")
    errors = events_named(redis_server.url, account, "messageDeliveryError")
    assert len(errors) == 1
    data = errors[0]["data"]
    assert data["queueId"] == reply["queueId"]
    assert data["smtpResponseCode"] == 451
    assert data["smtpResponse"].startswith("451")
    assert data["job"]["attemptsMade"] == 1
    assert data["job"]["attempts"] == 10
    assert data["job"]["nextAttempt"]
    kinds = [e["event"] for e in account_events(redis_server.url, account)]
    assert kinds.index("messageDeliveryError") < kinds.index("messageSent")
    assert "messageFailed" not in kinds


def test_permanent_550_fails_without_retry(
    mailgate: MailgateProcess, smtp_capture: SmtpCapture, redis_server: RedisServer
) -> None:
    smtp_capture.force_reply("RCPT", "550 5.1.1 No such user")
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        reply = submit(http, account, {"to": [{"address": "nobody@example.test"}], "text": "x"})
        failed = wait_event(redis_server.url, account, "messageFailed")
        assert failed["data"]["queueId"] == reply["queueId"]
        assert failed["data"]["smtpResponseCode"] == 550
        assert http.get(f"/v1/outbox/{reply['queueId']}").status_code == 404
    errors = events_named(redis_server.url, account, "messageDeliveryError")
    assert len(errors) == 1 and errors[0]["data"]["job"]["nextAttempt"] is False
    rcpts = [a for a in smtp_capture.attempts if a.phase == "RCPT"]
    assert [a.reply for a in rcpts] == ["550 5.1.1 No such user"]
    assert "messageSent" not in [e["event"] for e in account_events(redis_server.url, account)]


def test_send_at_waits_and_cancel(mailgate: MailgateProcess, smtp_capture: SmtpCapture) -> None:
    later = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 3600))
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        reply = submit(
            http,
            account,
            {"to": [{"address": "later@example.test"}], "subject": "later", "sendAt": later},
        )
        assert reply["sendAt"] == later
        job = http.get(f"/v1/outbox/{reply['queueId']}").json()
        assert job["account"] == account
        assert job["scheduled"] == later
        assert job["progress"]["status"] == "queued"
        assert job["envelope"] == {"from": f"{account}@example.test", "to": ["later@example.test"]}
        assert job["messageId"] == reply["messageId"]
        assert job["subject"] == "later"
        listing = http.get("/v1/outbox", params={"pageSize": 1000}).json()
        assert reply["queueId"] in [m["queueId"] for m in listing["messages"]]
        assert http.delete(f"/v1/outbox/{reply['queueId']}").json() == {"deleted": True}
        assert http.get(f"/v1/outbox/{reply['queueId']}").status_code == 404
        assert http.delete(f"/v1/outbox/{reply['queueId']}").status_code == 404


def test_validation_errors(mailgate: MailgateProcess, smtp_capture: SmtpCapture) -> None:
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        url = f"/v1/account/{account}/submit"
        bad_to = http.post(url, json={"to": [{"address": "not an address"}], "text": "x"})
        assert bad_to.status_code == 400 and bad_to.json()["code"] == "InvalidAddress"
        bad_b64 = http.post(
            url,
            json={
                "to": [{"address": "a@example.test"}],
                "attachments": [{"filename": "x", "content": "***"}],
            },
        )
        assert bad_b64.status_code == 400
        assert bad_b64.json()["error"] == "Bad Request"
        no_rcpt = http.post(url, json={"subject": "nobody", "text": "x"})
        assert no_rcpt.status_code == 400 and no_rcpt.json()["code"] == "EnvelopeNoRecipients"
        header = http.post(
            url,
            json={"to": [{"address": "a@example.test"}], "subject": "bad\r\nBcc: x@y.z"},
        )
        assert header.status_code == 400
        missing = http.post("/v1/account/no-such-account/submit", json={"text": "x"})
        assert missing.status_code == 404
        gateway = http.post(
            url, json={"to": [{"address": "a@example.test"}], "gateway": "no-such-gateway"}
        )
        assert gateway.status_code == 404 and gateway.json()["code"] == "GatewayNotFound"


# ---- gateways and templates -------------------------------------------------------------------


def test_gateway_delivery_and_counters(
    mailgate: MailgateProcess, smtp_capture: SmtpCapture
) -> None:
    host, port = smtp_capture.address
    gateway = f"gw-{uuid.uuid4().hex[:6]}"
    with mailgate.client() as http:
        created = http.post(
            "/v1/gateway",
            json={
                "gateway": gateway,
                "name": "Capture",
                "host": host,
                "port": port,
                "secure": False,
                "user": "gw-user",
                "pass": "gw-secret",
            },
        ).json()
        assert created == {"gateway": gateway, "state": "new"}
        info = http.get(f"/v1/gateway/{gateway}").json()
        assert info["pass"] == "******" and info["user"] == "gw-user" and info["deliveries"] == 0
        # the account's own SMTP server is unreachable: only the gateway can deliver
        account = f"gwacct-{uuid.uuid4().hex[:6]}"
        assert (
            http.post(
                "/v1/account",
                json={
                    "account": account,
                    "email": f"{account}@example.test",
                    "smtp": {"host": "127.0.0.1", "port": 9, "secure": False},
                },
            ).status_code
            == 200
        )
        reply = submit(
            http,
            account,
            {"to": [{"address": "via-gw@example.test"}], "text": "x", "gateway": gateway},
        )
        [captured] = smtp_capture.wait_for(1, predicate=by_message_id(reply["messageId"]))
        assert captured.auth_user == "gw-user"
        info = wait_for(
            lambda: (g := http.get(f"/v1/gateway/{gateway}").json())["deliveries"] == 1 and g,
            what="gateway delivery counter",
        )
        assert info["lastUse"]
        listed = http.get("/v1/gateways").json()
        assert gateway in [g["gateway"] for g in listed["gateways"]]
        assert http.put(f"/v1/gateway/edit/{gateway}", json={"name": "Renamed"}).json() == {
            "gateway": gateway
        }
        assert http.get(f"/v1/gateway/{gateway}").json()["name"] == "Renamed"
        assert http.delete(f"/v1/gateway/{gateway}").json() == {"gateway": gateway, "deleted": True}
        assert http.get(f"/v1/gateway/{gateway}").status_code == 404


def test_template_rendering_on_submit(mailgate: MailgateProcess, smtp_capture: SmtpCapture) -> None:
    with mailgate.client() as http:
        account = capture_account(http, smtp_capture)
        created = http.post(
            "/v1/templates/template",
            json={
                "account": account,
                "name": "Welcome",
                "content": {
                    "subject": "Hello {{ name }}",
                    "text": "Dear {{ name }}, order {{ order }}",
                    "html": "<p>Dear {{ name }}</p>",
                },
            },
        ).json()
        assert created["created"] is True and created["account"] == account
        tid = created["id"]
        listed = http.get("/v1/templates", params={"account": account}).json()
        assert [t["id"] for t in listed["templates"]] == [tid]
        reply = submit(
            http,
            account,
            {
                "to": [{"address": "t@example.test"}],
                "template": tid,
                "render": {"params": {"name": "<b>Ann</b>", "order": 4815}},
            },
        )
        [captured] = smtp_capture.wait_for(1, predicate=by_message_id(reply["messageId"]))
        msg = captured.message()
        assert msg["Subject"] == "Hello <b>Ann</b>"
        assert msg.get_body(("plain",)).get_content().strip() == "Dear <b>Ann</b>, order 4815"  # type: ignore[union-attr]
        assert (
            msg.get_body(("html",)).get_content().strip()  # type: ignore[union-attr]
            == "<p>Dear &lt;b&gt;Ann&lt;/b&gt;</p>"
        )
        assert http.put(
            f"/v1/templates/template/{tid}", json={"content": {"subject": "Bye"}}
        ).json() == {"updated": True, "account": account, "id": tid}
        assert http.get(f"/v1/templates/template/{tid}").json()["content"]["subject"] == "Bye"
        flushed = http.delete(f"/v1/templates/account/{account}", params={"force": "true"})
        assert flushed.json() == {"flushed": True, "account": account}
        assert http.get(f"/v1/templates/template/{tid}").status_code == 404


# ---- IMAP account through Dovecot submission ------------------------------------------------


@pytest.fixture
def imap_sender(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    user_factory: Callable[..., MailUser],
    redis_server: RedisServer,
) -> tuple[str, MailUser]:
    user = user_factory()
    with mailgate.client() as http:
        account = dovecot_account(http, dovecot, user)
    wait_event(redis_server.url, account, "accountInitialized")
    return account, user


def deliver_and_id(
    dovecot: Dovecot, redis_url: str, account: str, user: MailUser, raw: bytes, subject: str
) -> str:
    dovecot.deliver(user.name, raw)
    ev = wait_event(
        redis_url, account, "messageNew", where=lambda e: e["data"]["subject"] == subject
    )
    message_id: str = ev["data"]["id"]
    return message_id


def test_reply_threads_flags_answered_and_copies_to_sent(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    smtp_capture: SmtpCapture,
    redis_server: RedisServer,
    imap_sender: tuple[str, MailUser],
) -> None:
    account, user = imap_sender
    raw, orig_mid = original_message("Question")
    ref = deliver_and_id(dovecot, redis_server.url, account, user, raw, "Question")
    with mailgate.client() as http:
        reply = submit(
            http,
            account,
            {"reference": {"message": ref, "action": "reply"}, "text": "My answer"},
        )
        assert reply["reference"] == {"message": ref, "success": True}
    [captured] = smtp_capture.wait_for(1, predicate=by_message_id(reply["messageId"]))
    msg = captured.message()
    assert msg["Subject"] == "Re: Question"
    assert msg["In-Reply-To"] == orig_mid
    assert msg["References"].split() == ["<root@origin.test>", orig_mid]
    assert [a.addr_spec for a in msg["To"].addresses] == ["origin@origin.test"]
    assert captured.auth_user is None or captured.auth_user  # relayed by Dovecot submission
    wait_for(
        lambda: "\\Answered" in flags_of(dovecot, user, "INBOX", orig_mid),
        what="\\Answered on the original",
    )
    wait_for(lambda: folder_has(dovecot, user, "Sent", reply["messageId"]), what="a copy in Sent")
    # "Re:" is added once
    with mailgate.client() as http:
        raw2, _ = original_message("Re: Question")
        ref2 = deliver_and_id(dovecot, redis_server.url, account, user, raw2, "Re: Question")
        dry = submit(
            http,
            account,
            {"reference": {"message": ref2, "action": "reply"}, "text": "x", "dryRun": True},
        )
    assert b"Subject: Re: Question\r\n" in base64.b64decode(dry["preview"])


def test_reply_all_recipients_and_no_copy(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    smtp_capture: SmtpCapture,
    redis_server: RedisServer,
    imap_sender: tuple[str, MailUser],
) -> None:
    account, user = imap_sender
    raw, _ = original_message("Group thread")
    raw = raw.replace(
        b"To: someone@example.test", f"To: {user.name}@example.test, someone@example.test".encode()
    )
    ref = deliver_and_id(dovecot, redis_server.url, account, user, raw, "Group thread")
    with mailgate.client() as http:
        reply = submit(
            http,
            account,
            {
                "reference": {"message": ref, "action": "reply-all"},
                "text": "all of you",
                "copy": False,
            },
        )
    [captured] = smtp_capture.wait_for(1, predicate=by_message_id(reply["messageId"]))
    msg = captured.message()
    assert [a.addr_spec for a in msg["To"].addresses] == ["origin@origin.test"]
    cc = [a.addr_spec for a in msg["Cc"].addresses]
    assert cc == ["someone@example.test", "other@origin.test", "cc-person@origin.test"]
    assert f"{user.name}@example.test" not in cc
    wait_event(redis_server.url, account, "messageSent")
    assert not folder_has(dovecot, user, "Sent", reply["messageId"])


def test_forward_carries_attachments_and_flags_forwarded(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    smtp_capture: SmtpCapture,
    redis_server: RedisServer,
    imap_sender: tuple[str, MailUser],
) -> None:
    account, user = imap_sender
    blob = os.urandom(5000)
    raw, orig_mid = original_message("Report", attachment=blob)
    ref = deliver_and_id(dovecot, redis_server.url, account, user, raw, "Report")
    with mailgate.client() as http:
        reply = submit(
            http,
            account,
            {
                "reference": {
                    "message": ref,
                    "action": "forward",
                    "forwardAttachments": True,
                    "inline": True,
                },
                "to": [{"address": "fwd@example.test"}],
                "text": "see below",
            },
        )
    [captured] = smtp_capture.wait_for(1, predicate=by_message_id(reply["messageId"]))
    msg = captured.message()
    assert msg["Subject"] == "Fwd: Report"
    assert msg["References"].split()[-1] == orig_mid
    assert "In-Reply-To" not in msg
    [att] = [p for p in msg.walk() if p.get_filename() == "data.bin"]
    assert att.get_content() == blob
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert body.startswith("see below") and "original body line 2" in body
    wait_for(
        lambda: "$Forwarded" in flags_of(dovecot, user, "INBOX", orig_mid),
        what="$Forwarded on the original",
    )


def test_draft_submit_sends_and_removes_draft(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    smtp_capture: SmtpCapture,
    redis_server: RedisServer,
    imap_sender: tuple[str, MailUser],
) -> None:
    account, user = imap_sender
    mid = f"<{uuid.uuid4().hex}@draft.test>"
    draft = (
        f"From: {user.name}@example.test\r\nTo: draft-rcpt@example.test\r\n"
        f"Subject: my draft\r\nMessage-ID: {mid}\r\n\r\ndraft body\r\n"
    ).encode()
    conn = imap(dovecot, user)
    try:
        conn.append("Drafts", "(\\Draft)", None, draft)
    finally:
        conn.logout()
    ev = wait_event(
        redis_server.url, account, "messageNew", where=lambda e: e["data"]["subject"] == "my draft"
    )
    with mailgate.client() as http:
        resp = http.post(f"/v1/account/{account}/message/{ev['data']['id']}/submit", json={})
        assert resp.status_code == 200, resp.text
        reply = resp.json()
    assert reply["messageId"] == mid
    [captured] = smtp_capture.wait_for(1, predicate=by_message_id(mid))
    assert captured.rcpt_tos == ("draft-rcpt@example.test",)
    assert captured.message().get_content().strip() == "draft body"
    wait_for(lambda: not folder_has(dovecot, user, "Drafts", mid), what="the draft removed")
    wait_for(lambda: folder_has(dovecot, user, "Sent", mid), what="a copy in Sent")


# ---- fault: kill -9 during a burst -------------------------------------------------------------

BURST = 200


@pytest.mark.fault
def test_kill_during_burst_sends_each_message_at_most_once(
    mailgate_factory: Callable[..., MailgateProcess],
    redis_factory: Callable[[], RedisServer],
    smtp_capture: SmtpCapture,
) -> None:
    redis = redis_factory()
    mg = mailgate_factory(redis_url=redis.url)
    smtp_capture.delay_next("DATA", 0.01, times=BURST)  # keep the burst going long enough
    with mg.client() as http:
        account = capture_account(http, smtp_capture)
        ids: dict[str, str] = {}
        for i in range(BURST):
            reply = submit(
                http, account, {"to": [{"address": f"burst{i}@example.test"}], "text": str(i)}
            )
            ids[reply["messageId"]] = reply["queueId"]
    wait_for(lambda: len(smtp_capture.messages) >= 40, what="part of the burst delivered")
    mg.kill()
    at_kill = len(smtp_capture.messages)
    assert at_kill < BURST, "the burst finished before the kill; nothing was tested"
    mg.start()
    with mg.client() as http:
        wait_for(
            lambda: http.get("/v1/outbox").json()["total"] == 0,
            timeout=90,
            what="the outbox drained after the restart",
        )
    received: dict[str, int] = {}
    for m in smtp_capture.messages:
        mid = m.message()["Message-ID"]
        received[mid] = received.get(mid, 0) + 1
    duplicates = {k: v for k, v in received.items() if v > 1}
    assert not duplicates, f"sent twice: {duplicates}"
    assert set(received) <= set(ids)
    missing = set(ids) - set(received)
    # the one unavoidable window (docs/decisions/0002): a job caught between "sending" and
    # "sent" is reported as uncertain (messageFailed, EUNCERTAIN) instead of being re-sent
    uncertain = {
        e["data"]["messageId"]
        for e in account_events(redis.url, account)
        if e["event"] == "messageFailed" and e["data"].get("errorCode") == "EUNCERTAIN"
    }
    assert missing <= uncertain, f"lost without a report: {missing - uncertain}"
    assert len(uncertain) <= 1  # one SMTP connection per account: at most one job in flight
    sent_events = {
        e["data"]["messageId"]
        for e in account_events(redis.url, account)
        if e["event"] == "messageSent"
    }
    assert set(received) - uncertain <= sent_events
