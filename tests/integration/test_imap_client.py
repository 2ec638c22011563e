"""The asyncio IMAP client against a real Dovecot (shared ``dovecot`` fixture)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from mailgate.backends.imap.client import (
    ConnectionState,
    ImapClient,
    ImapTimeouts,
    QresyncParams,
)
from mailgate.errors import AuthenticationError, CommandError, ConnectError
from mailgate.protocols.imap import ExistsResponse, MailboxStatusResponse, Response

pytestmark = pytest.mark.integration

FAST = ImapTimeouts(connect=5, greeting=5, command=10, idle=60, logout=2)


def message(subject: str, body: str = "hello", extra: str = "") -> bytes:
    return (
        f"From: Sender <sender@example.test>\r\nTo: rcpt@example.test\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}.{time.time_ns()}@x>\r\n"
        f"{extra}Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


Connect = Callable[..., Awaitable[ImapClient]]


@pytest.fixture
async def connect(dovecot: Any) -> AsyncIterator[Connect]:
    clients: list[ImapClient] = []

    async def make(user: Any = None, *, login: bool = True, **kw: Any) -> ImapClient:
        kw.setdefault("secure", False)
        kw.setdefault("starttls", False)
        kw.setdefault("timeouts", FAST)
        client = await ImapClient.connect(dovecot.host, dovecot.imap_port, **kw)
        clients.append(client)
        if login and user is not None:
            await client.login(user.name, user.password)
        return client

    yield make
    for c in clients:
        await c.logout()


async def test_connect_capabilities_and_login(connect: Connect, mail_user: Any) -> None:
    client = await connect()
    assert client.state is ConnectionState.NOT_AUTHENTICATED
    assert client.has_capability("IMAP4rev1") and client.has_capability("auth=plain")
    await client.login(mail_user.name, mail_user.password)
    assert client.state is ConnectionState.AUTHENTICATED
    for cap in ("IDLE", "CONDSTORE", "QRESYNC", "MOVE", "UIDPLUS", "ESEARCH", "LIST-STATUS"):
        assert client.has_capability(cap), cap
    await client.noop()
    await client.logout()
    assert client.closed and client.state is ConnectionState.LOGOUT
    await client.logout()  # idempotent, never raises


async def test_starttls_and_implicit_tls(dovecot: Any, mail_user: Any) -> None:
    client = await ImapClient.connect(
        dovecot.host,
        dovecot.imap_port,
        secure=False,
        starttls=True,
        tls_verify=False,
        timeouts=FAST,
    )
    try:
        assert client._writer.get_extra_info("ssl_object") is not None
        assert not client.has_capability("STARTTLS")
        await client.login(mail_user.name, mail_user.password)
    finally:
        await client.logout()
    with pytest.raises(ConnectError):  # self-signed certificate, verification on
        await ImapClient.connect(
            dovecot.host, dovecot.imap_port, secure=False, starttls=True, timeouts=FAST
        )
    if dovecot.imaps_port:
        client = await ImapClient.connect(
            dovecot.host, dovecot.imaps_port, secure=True, tls_verify=False, timeouts=FAST
        )
        await client.login(mail_user.name, mail_user.password)
        await client.logout()


async def test_bad_login_and_authenticate_plain(connect: Connect, mail_user: Any) -> None:
    client = await connect()
    with pytest.raises(AuthenticationError) as info:
        await client.login(mail_user.name, "wrong password")
    assert info.value.server_response
    await client.authenticate_plain(mail_user.name, mail_user.password)  # same connection
    assert client.state is ConnectionState.AUTHENTICATED
    other = await connect()
    other.capabilities = other.capabilities - {"SASL-IR"}  # exercise the '+' round trip
    await other.authenticate_plain(mail_user.name, mail_user.password)
    third = await connect()
    with pytest.raises(AuthenticationError):
        await third.authenticate_plain(mail_user.name, "nope")


async def test_connect_refused_is_connect_error() -> None:
    with pytest.raises(ConnectError):
        await ImapClient.connect("127.0.0.1", 1, secure=False, timeouts=FAST)


async def test_oauth2_logins(connect: Connect, mail_user: Any, oauth2_introspection: Any) -> None:
    token = oauth2_introspection.issue(mail_user.name)
    client = await connect()
    await client.authenticate_xoauth2(mail_user.name, token)
    assert client.state is ConnectionState.AUTHENTICATED
    client = await connect()
    await client.authenticate_oauthbearer(mail_user.name, token, "127.0.0.1", 143)
    assert client.state is ConnectionState.AUTHENTICATED
    oauth2_introspection.revoke(token)
    for method in ("xoauth2", "oauthbearer"):
        client = await connect()
        with pytest.raises(AuthenticationError) as info:
            if method == "xoauth2":
                await client.authenticate_xoauth2(mail_user.name, token)
            else:
                await client.authenticate_oauthbearer(mail_user.name, token, "127.0.0.1", 143)
        assert info.value.server_response and "status" in info.value.server_response
        await client.noop()  # the connection survived the failed exchange


async def test_enable_id_namespace(connect: Connect, mail_user: Any) -> None:
    client = await connect(mail_user)
    assert await client.enable("QRESYNC") == {"QRESYNC"}
    assert "QRESYNC" in client.enabled
    server_id = await client.id({"name": "mailgate", "version": "test"})
    assert server_id is not None and server_id.get("name") == "Dovecot"
    ns = await client.namespace()
    assert [(n.prefix, n.delimiter) for n in ns.personal] == [("", "/")]


async def test_list_special_use_status_and_fallback(
    connect: Connect, mail_user: Any, dovecot: Any
) -> None:
    dovecot.deliver(mail_user.name, message("one"))
    client = await connect(mail_user)
    entries = await client.list(
        special_use=True, subscribed_info=True, status_items=["MESSAGES", "UIDNEXT", "UNSEEN"]
    )
    by_name = {e.name: e for e in entries}
    assert {
        "INBOX",
        "Sent",
        "Drafts",
        "Trash",
        "Junk",
        "Archive",
        "Archivé",
        "Archivé/Überweisungen",
    } <= set(by_name)
    assert by_name["Sent"].special_use == "\\Sent" and by_name["Sent"].subscribed
    assert by_name["INBOX"].status == {"MESSAGES": 1, "UIDNEXT": 2, "UNSEEN": 1}
    assert by_name["Archivé/Überweisungen"].delimiter == "/"
    # the same without LIST-EXTENDED / LIST-STATUS: LIST + LSUB + pipelined STATUS
    client.capabilities = client.capabilities - {"LIST-EXTENDED", "LIST-STATUS"}
    plain = await client.list(subscribed_info=True, status_items=["MESSAGES"])
    by_name2 = {e.name: e for e in plain}
    assert set(by_name2) == set(by_name)
    assert by_name2["INBOX"].status == {"MESSAGES": 1}
    assert by_name2["Sent"].subscribed
    assert (await client.list("", ""))[0].delimiter == "/"


async def test_mailbox_lifecycle_non_ascii(connect: Connect, mail_user: Any) -> None:
    client = await connect(mail_user)
    name, renamed = "Réunions & 日本語", "Ärger/Привет 😀"
    await client.create(name)
    with pytest.raises(CommandError) as info:
        await client.create(name)
    assert info.value.code == "ALREADYEXISTS"
    assert name in {e.name for e in await client.list()}
    await client.subscribe(name)
    await client.rename(name, renamed)
    names = {e.name for e in await client.list()}
    assert renamed in names and name not in names and "Ärger" in names
    assert (await client.status(renamed, ["MESSAGES"])) == {"MESSAGES": 0}
    await client.unsubscribe(renamed)
    await client.delete(renamed)
    with pytest.raises(CommandError) as info:
        await client.select(renamed)
    assert info.value.code in (None, "NONEXISTENT") and client.selected is None


async def test_append_select_fetch(connect: Connect, mail_user: Any) -> None:
    client = await connect(mail_user)
    when = datetime(2023, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    raw = message("Grüße", body="Ünïcödé body", extra="Content-Type: text/plain; charset=utf-8\r\n")
    raw = raw.replace(b"Subject: Gr\xc3\xbc\xc3\x9fe", b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=")
    appended = await client.append(
        "Archivé", raw, flags=["\\Seen", "$Forwarded"], internal_date=when
    )
    assert appended is not None and appended.uid == 1
    box = await client.select("Archivé", condstore=True)
    assert box.exists == 1 and box.uidvalidity == appended.uidvalidity
    assert box.highestmodseq and box.uidnext == 2 and not box.readonly
    assert "\\Seen" in box.flags and "\\*" in box.permanentflags
    (msg,) = await client.uid_fetch(
        [1],
        [
            "UID",
            "FLAGS",
            "MODSEQ",
            "INTERNALDATE",
            "RFC822.SIZE",
            "ENVELOPE",
            "BODYSTRUCTURE",
            "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
            "BODY.PEEK[]",
            "BINARY.PEEK[1]",
        ],
    )
    assert msg.uid == 1 and set(msg.flags or ()) - {"\\Recent"} == {"\\Seen", "$Forwarded"}
    assert msg.internaldate == when and msg.size == len(raw)
    assert msg.envelope is not None and msg.envelope.subject == "Grüße"
    assert msg.envelope.from_[0].name == "Sender"
    assert msg.bodystructure is not None and msg.bodystructure.params["charset"] == "utf-8"
    assert msg.section("") == raw
    assert msg.section("HEADER.FIELDS (SUBJECT)").startswith(b"Subject: =?utf-8?q?")
    assert msg.section("1", kind="BINARY") == "Ünïcödé body\r\n".encode()
    examined = await client.select("INBOX", readonly=True)
    assert examined.readonly and client.selected is examined
    await client.unselect()
    assert client.selected is None and client.state is ConnectionState.AUTHENTICATED


async def test_condstore_qresync_store_search(
    connect: Connect, mail_user: Any, dovecot: Any
) -> None:
    for i in range(5):
        dovecot.deliver(mail_user.name, message(f"msg {i}", body="naïve café" if i == 3 else "x"))
    client = await connect(mail_user)
    await client.enable("QRESYNC")
    box = await client.select("INBOX", condstore=True)
    assert box.exists == 5
    base_modseq = box.highestmodseq
    assert base_modseq is not None
    stored = await client.uid_store([2], "+FLAGS", ["\\Flagged"], silent=False)
    assert stored[0].uid == 2 and "\\Flagged" in (stored[0].flags or ())
    changed = await client.uid_fetch("1:*", ["UID", "FLAGS"], changedsince=base_modseq)
    assert [m.uid for m in changed] == [2]
    assert await client.uid_search(["FLAGGED"]) == [2]
    assert await client.uid_search(["ALL"]) == [1, 2, 3, 4, 5]
    assert await client.uid_search(["BODY", "café".encode()], charset="UTF-8") == [4]
    assert await client.uid_search(["SUBJECT", '"msg 1"']) == [2]
    client.capabilities = client.capabilities - {"ESEARCH"}
    assert await client.uid_search(["BODY", "naïve".encode()]) == [4]
    # UNCHANGEDSINCE refused for a message changed later
    result = await client.uid_store([2, 3], "+FLAGS", ["$Label1"], unchangedsince=base_modseq)
    assert result.modified == (2,)
    # expunge two, then QRESYNC from the old state: VANISHED (EARLIER) + changed flags
    await client.uid_store([1, 5], "+FLAGS", ["\\Deleted"])
    assert await client.uid_expunge([1, 5]) == [1, 5]
    assert client.selected is not None and client.selected.exists == 3
    vanished = await client.uid_fetch(
        "1:*", ["UID", "FLAGS"], changedsince=base_modseq, vanished=True
    )
    assert vanished.vanished == [1, 5] and sorted(m.uid or 0 for m in vanished) == [2, 3]
    await client.unselect()
    box = await client.select(
        "INBOX", qresync=QresyncParams(box.uidvalidity or 0, base_modseq, "1:5")
    )
    assert box.qresync and box.vanished == [1, 5]
    assert sorted(f.uid or 0 for f in box.fetches) == [2, 3]


async def test_copy_move_and_fallback(connect: Connect, mail_user: Any, dovecot: Any) -> None:
    for i in range(4):
        dovecot.deliver(mail_user.name, message(f"move {i}"))
    client = await connect(mail_user)
    await client.select("INBOX")
    copied = await client.uid_copy([1], "Trash")
    assert copied is not None and copied.mapping() == {1: 1}
    moved = await client.uid_move([1, 2], "Archive")
    assert moved is not None and moved.source_uids == (1, 2) and moved.dest_uids == (1, 2)
    assert client.selected is not None and client.selected.exists == 2
    fallback = await client.uid_move([3], "Archive", use_move=False)
    assert fallback is not None and fallback.mapping() == {3: 3}
    assert client.selected.exists == 1
    assert await client.uid_search(["ALL"]) == [4]
    client.capabilities = client.capabilities - {"UIDPLUS"}
    await client.uid_move([4], "Archive", use_move=False)  # COPY + STORE + EXPUNGE
    assert client.selected.exists == 0
    assert (await client.status("Archive", ["MESSAGES"]))["MESSAGES"] == 4


async def test_idle_woken_by_delivery(connect: Connect, mail_user: Any, dovecot: Any) -> None:
    client = await connect(mail_user)
    await client.select("INBOX")
    seen: list[Response] = []
    remove = client.add_unsolicited_listener(seen.append)

    async def deliver_later() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(dovecot.deliver, mail_user.name, message("wake up"))

    task = asyncio.create_task(deliver_later())
    started = time.monotonic()
    responses = await client.idle(20)
    await task
    assert time.monotonic() - started < 10
    assert any(isinstance(r, ExistsResponse) and r.count == 1 for r in responses)
    assert client.selected is not None and client.selected.exists == 1
    assert any(isinstance(r, ExistsResponse) for r in seen)
    assert client.state is ConnectionState.SELECTED
    remove()
    # an idle with nothing happening returns after max_seconds
    started = time.monotonic()
    assert await client.idle(0.3) == []
    assert time.monotonic() - started < 3
    await client.noop()


async def test_idle_cancel_and_command_interrupts_idle(connect: Connect, mail_user: Any) -> None:
    client = await connect(mail_user)
    await client.select("INBOX")
    task = asyncio.create_task(client.idle(30))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not client.closed
    assert (await client.status("INBOX", ["MESSAGES"])) == {"MESSAGES": 0}
    # a command issued during IDLE ends it early, then runs
    idle_task = asyncio.create_task(client.idle(30))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await client.noop()
    assert time.monotonic() - started < 5
    assert await asyncio.wait_for(idle_task, 5) == []


async def test_pipelined_concurrent_commands(
    connect: Connect, mail_user: Any, dovecot: Any
) -> None:
    for i in range(3):
        dovecot.deliver(mail_user.name, message(f"pipe {i}"))
    client = await connect(mail_user)
    await client.select("INBOX")
    coros = []
    for i in range(10):
        if i % 3 == 0:
            coros.append(client.uid_fetch([1 + i % 3], ["UID", "FLAGS"]))
        elif i % 3 == 1:
            coros.append(client.status("Sent", ["MESSAGES"]))
        else:
            coros.append(client.uid_search(["ALL"]))
    results = await asyncio.gather(*coros)
    for i, res in enumerate(results):
        if i % 3 == 0:
            assert [m.uid for m in res] == [1]
        elif i % 3 == 1:
            assert res == {"MESSAGES": 0}
        else:
            assert res == [1, 2, 3]
    assert client.max_in_flight > 1
    # a big literal (synchronizing, no LITERAL+) does not interleave with other commands
    client.capabilities = client.capabilities - {"LITERAL+"}
    client._encoder.literal_plus = False
    big = message("big", body="y" * 200_000)
    appended, _status = await asyncio.gather(client.append("Drafts", big), client.noop())
    assert appended is not None


async def test_server_kills_connection_mid_command(
    connect: Connect, user_factory: Any, dovecot: Any
) -> None:
    user = user_factory()
    client = await connect(user)
    await client.select("INBOX")
    task = asyncio.create_task(client.idle(30))
    await asyncio.sleep(0.3)
    pids = _imap_pids(dovecot, user.name)
    assert pids, "no imap process found for the user"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(ConnectError):
        await asyncio.wait_for(task, 5)
    assert client.closed
    with pytest.raises(ConnectError):
        await client.noop()
    # a doveadm kick (BYE then close) fails pending commands too
    client = await connect(user)
    await client.select("INBOX")
    pending = asyncio.create_task(client.idle(30))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(dovecot.kill_connections, user.name)
    with pytest.raises(ConnectError):
        await asyncio.wait_for(pending, 5)


def _imap_pids(dovecot: Any, user: str) -> list[int]:
    proc = dovecot.doveadm("who", "-1", user, check=False)
    pids: list[int] = []
    for line in proc.stdout.decode().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "imap" and fields[2].isdigit():
            pids.append(int(fields[2]))
    if not pids:  # fall back to ps: "imap: [user 127.0.0.1 ...]"
        ps = ["ps", "-eo", "pid,args"]
        out = subprocess.run(ps, check=False, capture_output=True, text=True).stdout
        pids = [int(row.split()[0]) for row in out.splitlines() if f"imap: [{user} " in row]
    return pids


async def test_notify_reports_other_folders(connect: Connect, mail_user: Any, dovecot: Any) -> None:
    client = await connect(mail_user)
    await client.select("INBOX")
    initial = await client.notify_set(
        "STATUS (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
        "(PERSONAL (MessageNew MessageExpunge MailboxName))"
    )
    initial_status = {r.mailbox: r.items for r in initial if isinstance(r, MailboxStatusResponse)}
    assert initial_status["Archive"]["MESSAGES"] == 0 and "Archivé" in initial_status

    async def deliver_later() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(dovecot.deliver, mail_user.name, message("elsewhere"), "Archive")

    task = asyncio.create_task(deliver_later())
    deadline = time.monotonic() + 10
    archive: dict[str, int] = {}
    while not archive.get("MESSAGES") and time.monotonic() < deadline:
        # Dovecot also reports the lazily created special-use folders (LIST + STATUS) first
        for r in await client.idle(deadline - time.monotonic()):
            if isinstance(r, MailboxStatusResponse) and r.mailbox == "Archive":
                archive = r.items
    await task
    assert archive.get("MESSAGES") == 1
    await client.notify_none()
