"""Several processes on one Redis: fair shares, failover after kill -9, fencing after SIGSTOP."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import MailUser
from tests.integration.helpers import account_events, imap_account, wait_event, wait_for
from tests.integration.test_sync_events import message
from tests.servers.dovecot import Dovecot
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer, sync_client

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.cluster]

SECRET = "shared-secret-for-all-processes"
ACCOUNTS = 9


def owners(url: str, accounts: list[str]) -> dict[str, str | None]:
    r = sync_client(url)
    try:
        raw = [r.get(f"mg:{{{a}}}:lease") for a in accounts]
    finally:
        r.close()
    return {a: v.decode() if v else None for a, v in zip(accounts, raw, strict=True)}


def node_of(mg: MailgateProcess) -> str:
    return (
        next(row for row in (mg.cli("status").stdout.splitlines()) if f'"pid": "{mg.pid}"' in row)
        .split('"node": "')[1]
        .split('"')[0]
    )


def states(mg: MailgateProcess, accounts: list[str]) -> dict[str, str]:
    with mg.client() as http:
        return {a: http.get(f"/v1/account/{a}").json()["state"] for a in accounts}


@pytest.fixture
def cluster(
    mailgate_factory: Callable[..., MailgateProcess],
    redis_factory: Callable[[], RedisServer],
    dovecot: Dovecot,
    user_factory: Callable[..., MailUser],
) -> tuple[list[MailgateProcess], RedisServer, list[str], dict[str, MailUser]]:
    store = redis_factory()
    procs = [
        mailgate_factory(
            redis_url=store.url, secret=SECRET, extra_args=("--role", "api", "--role", "sync")
        )
        for _ in range(3)
    ]
    users: dict[str, MailUser] = {}
    accounts = []
    with procs[0].client() as http:
        for _ in range(ACCOUNTS):
            user = user_factory("scale")
            account = f"scale-{uuid.uuid4().hex[:6]}"
            body = imap_account(account, user.name, user.password, dovecot.host, dovecot.imap_port)
            assert http.post("/v1/account", json=body).status_code == 200
            users[account] = user
            accounts.append(account)
    wait_for(
        lambda: set(states(procs[1], accounts).values()) == {"connected"},
        timeout=60,
        what="every account connected",
    )
    return procs, store, accounts, users


def test_accounts_spread_and_fail_over_after_kill(
    cluster: tuple[list[MailgateProcess], RedisServer, list[str], dict[str, MailUser]],
    dovecot: Dovecot,
) -> None:
    procs, store, accounts, users = cluster

    # fair shares: 9 accounts over 3 processes, 3 each once rebalanced
    def spread() -> dict[str, int] | None:
        counts: dict[str, int] = {}
        for owner in owners(store.url, accounts).values():
            if owner is None:
                return None
            counts[owner] = counts.get(owner, 0) + 1
        return counts if len(counts) == 3 and max(counts.values()) <= 4 else None

    wait_for(spread, timeout=60, what="accounts spread over three processes")

    victim = procs[0]
    victim_node = node_of(victim)
    lost = [a for a, o in owners(store.url, accounts).items() if o == victim_node]
    assert lost
    victim.kill()
    # mail delivered during the failover is announced exactly once
    target = lost[0]
    dovecot.deliver(users[target].name, message("during failover"))

    def moved() -> bool:
        now = owners(store.url, lost)
        return all(o not in (None, victim_node) for o in now.values()) and set(
            states(procs[1], lost).values()
        ) == {"connected"}

    wait_for(moved, timeout=30, what="the killed process's accounts running elsewhere")
    wait_event(store.url, target, "messageNew", timeout=30)
    time.sleep(1.0)
    news = [e for e in account_events(store.url, target) if e["event"] == "messageNew"]
    assert [e["data"]["subject"] for e in news] == ["during failover"]


def test_paused_process_cannot_overwrite_new_owner(
    cluster: tuple[list[MailgateProcess], RedisServer, list[str], dict[str, MailUser]],
    dovecot: Dovecot,
) -> None:
    procs, store, accounts, users = cluster
    wait_for(lambda: None not in owners(store.url, accounts).values(), what="all leased")
    paused = procs[2]
    paused_node = node_of(paused)
    held = [a for a, o in owners(store.url, accounts).items() if o == paused_node]
    assert held, "the paused process should hold some accounts"
    assert paused.pid is not None
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: all(o not in (None, paused_node) for o in owners(store.url, held).values()),
            timeout=40,
            what="leases of the paused process taken over",
        )
        # the new owner indexes a new message while the old one is frozen
        target = held[0]
        dovecot.deliver(users[target].name, message("while paused"))
        wait_event(store.url, target, "messageNew", timeout=30)
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    # the woken process must not write over the new owner's state or announce again
    dovecot.deliver(users[target].name, message("after wake"))
    wait_event(
        store.url,
        target,
        "messageNew",
        timeout=30,
        where=lambda e: e["data"]["subject"] == "after wake",
    )
    time.sleep(3.0)  # give the woken process time to (wrongly) act
    subjects: list[Any] = [
        e["data"]["subject"]
        for e in account_events(store.url, target)
        if e["event"] == "messageNew"
    ]
    # (the woken process may legitimately get accounts back later when shares rebalance; what it
    # must never do is write with its old lease: that would show as a duplicate or lost event)
    assert subjects == ["while paused", "after wake"]
