"""The test servers themselves, driven over real sockets with stdlib clients."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage

import pytest
import redis

from tests.conftest import DOVECOT_USERS, MailUser
from tests.servers.dovecot import Dovecot, TokenIntrospection, process_alive
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer
from tests.servers.smtp import SmtpCapture

pytestmark = pytest.mark.integration

REQUIRED_CAPS = {
    "IDLE",
    "CONDSTORE",
    "QRESYNC",
    "NOTIFY",
    "SPECIAL-USE",
    "MOVE",
    "UIDPLUS",
    "LIST-STATUS",
}
NON_ASCII_FOLDER = "Archivé/Überweisungen"
NON_ASCII_FOLDER_MUTF7 = "Archiv&AOk-/&ANw-berweisungen"


def imap_login(dc: Dovecot, user: str, password: str) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    conn.login(user, password)
    return conn


def make_message(subject: str, to: str = "alice@example.test") -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(f"Body of {subject}\n")
    return msg.as_bytes()


def search_subject(conn: imaplib.IMAP4, folder: str, subject: str) -> list[bytes]:
    typ, _ = conn.select(f'"{folder}"', readonly=True)
    assert typ == "OK"
    typ, data = conn.search(None, "SUBJECT", f'"{subject}"')
    assert typ == "OK"
    found: list[bytes] = data[0].split()
    return found


# ---- Dovecot -------------------------------------------------------------------------------


def test_dovecot_greets_and_logs_in(dovecot: Dovecot) -> None:
    with socket.create_connection((dovecot.host, dovecot.imap_port), timeout=5) as s:
        assert s.recv(1024).startswith(b"* OK")
    conn = imap_login(dovecot, "alice", DOVECOT_USERS["alice"])
    try:
        typ, data = conn.capability()
        assert typ == "OK"
        caps = set(data[0].decode().upper().split())
        assert caps >= REQUIRED_CAPS, REQUIRED_CAPS - caps
        # the capabilities are really usable, not just advertised
        typ, _ = conn.enable("QRESYNC")
        assert typ == "OK"
        typ, data = conn.select("INBOX")
        assert typ == "OK"
        assert conn.untagged_responses.get("HIGHESTMODSEQ") or any(
            b"HIGHESTMODSEQ" in r for r in conn.untagged_responses.get("OK", [])
        )
        tag = conn._new_tag().decode()  # NOTIFY has no imaplib helper
        conn.send(f"{tag} NOTIFY SET (selected (MessageNew MessageExpunge))\r\n".encode())
        line = conn.readline()
        while not line.startswith(tag.encode()):
            line = conn.readline()
        assert line.split()[1] == b"OK", line
    finally:
        conn.logout()


def test_dovecot_imaps_self_signed(dovecot: Dovecot) -> None:
    if dovecot.imaps_port is None:
        pytest.fail("imaps listener not configured (no TLS certificate could be made)")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=ctx, timeout=10)
    conn.login("bob", DOVECOT_USERS["bob"])
    conn.logout()


def test_default_folders(dovecot: Dovecot, mail_user: MailUser) -> None:
    conn = imap_login(dovecot, mail_user.name, mail_user.password)
    try:
        typ, data = conn.list()
        assert typ == "OK"
        lines = [d.decode() for d in data if isinstance(d, bytes)]
        for use in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
            assert any(f"\\{use}" in ln and ln.endswith(f'"/" {use}') for ln in lines), lines
        assert any(ln.endswith(NON_ASCII_FOLDER_MUTF7) for ln in lines), lines
    finally:
        conn.logout()


def test_deliver_inbox_and_other_folder(dovecot: Dovecot, mail_user: MailUser) -> None:
    dovecot.deliver(mail_user.name, make_message("to the inbox"))
    dovecot.deliver(mail_user.name, make_message("to a folder"), folder=NON_ASCII_FOLDER)
    dovecot.deliver(mail_user.name, make_message("to a new folder"), folder="Projects/2024")
    conn = imap_login(dovecot, mail_user.name, mail_user.password)
    try:
        assert len(search_subject(conn, "INBOX", "to the inbox")) == 1
        assert search_subject(conn, "INBOX", "to a folder") == []
        assert len(search_subject(conn, NON_ASCII_FOLDER_MUTF7, "to a folder")) == 1
        assert len(search_subject(conn, "Projects/2024", "to a new folder")) == 1
    finally:
        conn.logout()


def test_user_factory_gives_independent_users(
    dovecot: Dovecot, user_factory: Callable[..., MailUser]
) -> None:
    one, two = user_factory(), user_factory("other")
    assert one.name != two.name
    dovecot.deliver(one.name, make_message("only for one"))
    conn = imap_login(dovecot, two.name, two.password)
    try:
        assert search_subject(conn, "INBOX", "only for one") == []
    finally:
        conn.logout()


def test_fill_bulk_in_uid_order(dovecot: Dovecot, mail_user: MailUser) -> None:
    started = time.monotonic()
    dovecot.fill(mail_user.name, "Bulk", 2000)
    elapsed = time.monotonic() - started
    conn = imap_login(dovecot, mail_user.name, mail_user.password)
    try:
        typ, data = conn.select("Bulk", readonly=True)
        assert typ == "OK" and data[0] == b"2000"
        for uid, index in (("1", 0), ("1000", 999), ("2000", 1999)):
            typ, fetched = conn.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            assert f"Subject: Message {index}".encode() in fetched[0][1]
    finally:
        conn.logout()
    print(f"fill: 2000 messages in {elapsed:.2f} s")


def test_wrong_password_fails_fast_without_penalty(dovecot: Dovecot, mail_user: MailUser) -> None:
    for _ in range(3):
        conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error):
            conn.login(mail_user.name, "wrong-password")
        assert time.monotonic() - started < 1.0
        conn.logout()
    started = time.monotonic()
    conn = imap_login(dovecot, mail_user.name, mail_user.password)
    assert time.monotonic() - started < 1.0, "auth penalty is active"
    conn.logout()


def test_oauth2_login_against_introspection(
    dovecot: Dovecot, oauth2_introspection: TokenIntrospection, mail_user: MailUser
) -> None:
    def xoauth2(token: str) -> Callable[[bytes], bytes]:
        sent = False

        def answer(challenge: bytes) -> bytes:
            nonlocal sent
            if sent:  # the JSON error challenge: answer with an empty line
                return b""
            sent = True
            return f"user={mail_user.name}\x01auth=Bearer {token}\x01\x01".encode()

        return answer

    token = oauth2_introspection.issue(mail_user.name)
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    typ, _ = conn.authenticate("XOAUTH2", xoauth2(token))
    assert typ == "OK"
    conn.logout()

    oauth2_introspection.revoke(token)
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error):
        conn.authenticate("XOAUTH2", xoauth2(token))
    conn.logout()

    other = oauth2_introspection.issue("somebody-else")  # token of another user
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error):
        conn.authenticate("XOAUTH2", xoauth2(other))
    conn.logout()
    assert oauth2_introspection.requests, "Dovecot never asked the introspection endpoint"


def test_kill_connections_drops_sessions(dovecot: Dovecot, mail_user: MailUser) -> None:
    conn = imap_login(dovecot, mail_user.name, mail_user.password)
    conn.select("INBOX")
    dovecot.kill_connections(mail_user.name)
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        for _ in range(20):
            conn.noop()
            time.sleep(0.1)
    # and the user can come back at once
    imap_login(dovecot, mail_user.name, mail_user.password).logout()


@pytest.mark.fault
def test_restart_ends_busy_sessions_and_comes_back(dovecot: Dovecot, mail_user: MailUser) -> None:
    ports = (dovecot.imap_port, dovecot.submission_port)
    old_pid = dovecot.pid
    conn = imap_login(dovecot, mail_user.name, mail_user.password)
    conn.select("INBOX")
    tag = conn._new_tag().decode()
    conn.send(f"{tag} IDLE\r\n".encode())
    assert conn.readline().startswith(b"+")
    assert old_pid is not None

    started = time.monotonic()
    dovecot.restart()
    took = time.monotonic() - started

    # the IDLE connection was really ended (EOF or reset), not left hanging
    conn.sock.settimeout(5)
    try:
        rest = conn.sock.recv(4096)
        while rest and b"BYE" not in rest:
            rest = conn.sock.recv(4096)
    except (ConnectionResetError, TimeoutError) as exc:
        assert isinstance(exc, ConnectionResetError), "IDLE session still open after restart"
    conn.shutdown()
    assert not process_alive(old_pid)
    assert (dovecot.imap_port, dovecot.submission_port) == ports
    imap_login(dovecot, mail_user.name, mail_user.password).logout()
    print(f"dovecot restart: {took:.2f} s")


def test_submission_relays_to_capture(dovecot: Dovecot, smtp_capture: SmtpCapture) -> None:
    msg = make_message("via submission", to="someone@example.test")
    with smtplib.SMTP(dovecot.host, dovecot.submission_port, timeout=10) as client:
        client.ehlo()
        client.login("alice", DOVECOT_USERS["alice"])
        refused = client.sendmail("alice@example.test", ["someone@example.test"], msg)
        assert refused == {}
    [got] = smtp_capture.wait_for(1)
    assert got.mail_from == "alice@example.test"
    assert got.rcpt_tos == ("someone@example.test",)
    assert got.message()["Subject"] == "via submission"


def test_submission_requires_auth(dovecot: Dovecot) -> None:
    with smtplib.SMTP(dovecot.host, dovecot.submission_port, timeout=10) as client:
        client.ehlo()
        code, _ = client.mail("alice@example.test")
        assert code == 530


def test_submission_passes_relay_errors_back(dovecot: Dovecot, smtp_capture: SmtpCapture) -> None:
    smtp_capture.force_reply("RCPT", "550 5.1.1 No such user here")
    with smtplib.SMTP(dovecot.host, dovecot.submission_port, timeout=10) as client:
        client.login("bob", DOVECOT_USERS["bob"])
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            client.sendmail("bob@example.test", ["nobody@example.test"], make_message("x"))
        assert info.value.recipients["nobody@example.test"][0] == 550
    assert smtp_capture.messages == []


# ---- SMTP capture --------------------------------------------------------------------------


def test_smtp_capture_forced_replies(smtp_capture: SmtpCapture) -> None:
    smtp_capture.force_reply("DATA", "451 4.3.0 Try again later")
    smtp_capture.force_reply("RCPT", "550 5.1.1 Unknown user")
    with smtplib.SMTP(smtp_capture.host, smtp_capture.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@example.test", ["b@example.test"], make_message("one"))
        assert refused.value.recipients["b@example.test"][0] == 550
        client.rset()
        with pytest.raises(smtplib.SMTPDataError) as data_error:
            client.sendmail("a@example.test", ["b@example.test"], make_message("two"))
        assert data_error.value.smtp_code == 451
        client.rset()
        assert client.sendmail("a@example.test", ["b@example.test"], make_message("three")) == {}
    [got] = smtp_capture.wait_for(1)
    assert got.message()["Subject"] == "three"
    replies = [(a.phase, a.reply[:3]) for a in smtp_capture.attempts]
    assert ("RCPT", "550") in replies and ("DATA", "451") in replies


def test_smtp_capture_auth(smtp_capture: SmtpCapture) -> None:
    with smtplib.SMTP(smtp_capture.host, smtp_capture.port, timeout=10) as client:
        client.login("carol", "anything")
        client.sendmail("carol@example.test", ["x@example.test"], make_message("authed"))
    [got] = smtp_capture.wait_for(1)
    assert got.auth_user == "carol"


# ---- Redis ---------------------------------------------------------------------------------


def test_redis_ping_and_aof_persistence(redis_factory: Callable[[], RedisServer]) -> None:
    server = redis_factory()
    assert server.port != 6379
    client = redis.Redis.from_url(server.url)
    assert client.ping()
    client.set("mailgate-test:key", "value")
    client.rpush("mailgate-test:list", "a", "b")
    client.close()
    server.restart()
    client = redis.Redis.from_url(server.url)
    assert client.get("mailgate-test:key") == b"value"
    assert client.lrange("mailgate-test:list", 0, -1) == [b"a", b"b"]
    client.close()
    assert (server.base / "appendonly.aof").exists()


def test_redis_kill_and_start_again(redis_server: RedisServer) -> None:
    pid = redis_server.pid
    assert pid is not None
    redis_server.kill()
    assert not process_alive(pid)
    assert not redis_server.ping()
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    assert client.ping()
    client.close()


# ---- mailgate ------------------------------------------------------------------------------


def test_mailgate_process_health_and_token(mailgate: MailgateProcess) -> None:
    assert len(mailgate.token) == 64
    with mailgate.client() as http:
        resp = http.get("/health")
        assert resp.status_code == 200, resp.text
    assert mailgate.log_path.exists()
