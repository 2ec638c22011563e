"""Sync engine fault tests: kill -9 during a first index, flush with an indexer switch."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable

import pytest

from tests.conftest import MailUser
from tests.integration.helpers import account_events, imap_account, wait_event, wait_for, wait_state
from tests.integration.test_sync_events import message
from tests.servers.dovecot import Dovecot
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer, sync_client

pytestmark = [pytest.mark.integration, pytest.mark.fault]

FOLDER_SIZE = 20_000


def inbox_progress(redis_url: str, account: str) -> tuple[int, bool]:
    """(highest UID indexed, first index complete) of the account's INBOX."""
    r = sync_client(redis_url)
    try:
        mbno = r.hget(f"mg:{{{account}}}:mbsync", "INBOX")
        if mbno is None:
            return 0, False
        state = r.hgetall(f"mg:{{{account}}}:mb:{int(mbno)}")
        return int(state.get(b"progress", 0)), state.get(b"complete") == b"1"
    finally:
        r.close()


def test_kill_during_first_index_resumes_without_duplicates(
    mailgate_factory: Callable[..., MailgateProcess],
    redis_factory: Callable[[], RedisServer],
    dovecot: Dovecot,
    user_factory: Callable[..., MailUser],
) -> None:
    store = redis_factory()
    user = user_factory()
    dovecot.fill(user.name, "INBOX", FOLDER_SIZE)
    env = {"MAILGATE_INDEX_CHUNK": "500"}
    mg = mailgate_factory(redis_url=store.url, env=env)
    account = f"kill-{uuid.uuid4().hex[:6]}"
    body = imap_account(account, user.name, user.password, dovecot.host, dovecot.imap_port)
    with mg.client() as http:
        assert http.post("/v1/account", json=body).status_code == 200

    wait_for(lambda: inbox_progress(store.url, account)[0] >= 500, timeout=60, what="one chunk")
    assert mg.pid is not None
    os.kill(mg.pid, signal.SIGSTOP)  # freeze first, so the progress we read is the final one
    progress, complete = inbox_progress(store.url, account)
    mg.kill()
    assert not complete and 500 <= progress < FOLDER_SIZE, (progress, complete)

    mg.start()
    with mg.client() as http:
        wait_for(
            lambda: (
                http.get(f"/v1/account/{account}").json().get("indexing", {}).get("initialized")
            ),
            timeout=120,
            what="first index complete",
        )
    # the second run continued where the first stopped instead of starting over
    log = mg.log_path.read_text()
    assert f"UID FETCH {progress + 1}:" in log, "index did not resume from its cursor"
    _, complete = inbox_progress(store.url, account)
    assert complete

    # nothing old announced; a new message is announced exactly once
    dovecot.deliver(user.name, message("after the crash"))
    wait_event(store.url, account, "messageNew", timeout=30)
    news = [e for e in account_events(store.url, account) if e["event"] == "messageNew"]
    assert [e["data"]["subject"] for e in news] == ["after the crash"]
    inits = [e for e in account_events(store.url, account) if e["event"] == "accountInitialized"]
    assert len(inits) == 1

    # the index holds one compact record per message
    r = sync_client(store.url)
    try:
        mbno = int(r.hget(f"mg:{{{account}}}:mbsync", "INBOX"))
        chunks = r.smembers(f"mg:{{{account}}}:ixc:{mbno}")
        records = sum(
            len(r.get(f"mg:{{{account}}}:ix:{mbno}:{int(c)}") or b"") // 14 for c in chunks
        )
    finally:
        r.close()
    assert records == FOLDER_SIZE + 1


def test_flush_switches_indexer_and_keeps_ids(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    user_factory: Callable[..., MailUser],
    redis_server: RedisServer,
) -> None:
    user = user_factory()
    account = f"flush-{uuid.uuid4().hex[:6]}"
    body = imap_account(account, user.name, user.password, dovecot.host, dovecot.imap_port)
    body["imapIndexer"] = "full"
    url = redis_server.url
    with mailgate.client() as http:
        assert http.post("/v1/account", json=body).status_code == 200
        wait_state(http, account, "connected")
        wait_event(url, account, "accountInitialized")
        dovecot.deliver(user.name, message("before flush"))
        before = wait_event(url, account, "messageNew")

        bad = http.put(f"/v1/account/{account}/flush", json={"flush": True, "imapIndexer": "slow"})
        assert bad.status_code == 400
        resp = http.put(f"/v1/account/{account}/flush", json={"flush": True, "imapIndexer": "fast"})
        assert resp.json() == {"flush": True}
        wait_for(
            lambda: (
                len([e for e in account_events(url, account) if e["event"] == "accountInitialized"])
                == 2
            ),
            what="second accountInitialized",
        )
        info = wait_state(http, account, "connected")
        assert info["imapIndexer"] == "fast"
        assert info["indexing"]["indexer"] == "fast"

        dovecot.deliver(user.name, message("after flush"))
        after = wait_event(
            url, account, "messageNew", where=lambda e: e["data"]["subject"] == "after flush"
        )
        # same mailbox number: ids of old messages stay valid across the flush
        assert after["data"]["id"][:6] == before["data"]["id"][:6]
        assert after["data"]["uid"] == before["data"]["uid"] + 1
        subjects = [
            e["data"]["subject"] for e in account_events(url, account) if e["event"] == "messageNew"
        ]
        assert subjects == ["before flush", "after flush"]  # the flush replayed nothing

        assert http.put(f"/v1/account/{account}/sync", json={"sync": True}).json() == {"sync": True}
        assert http.put(f"/v1/account/{account}/sync", json={}).json() == {"sync": False}
