"""The service on a Redis Cluster: reported as one, and accounts spread over the masters.

Runs in both passes of the suite; in the cluster pass (``MAILGATE_TEST_REDIS=cluster``, three
masters) it also checks that the accounts' keys really live on several masters, each account's
keys in one slot, so the other core cases exercise routing across nodes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis.cluster

from tests.conftest import REDIS_KIND, MailUser
from tests.integration.helpers import account_events, imap_account, wait_event, wait_state
from tests.integration.test_sync_events import message
from tests.servers.dovecot import Dovecot
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer, sync_client

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

ACCOUNTS = 12


def test_stats_report_the_redis_kind(mailgate: MailgateProcess) -> None:
    with mailgate.client() as http:
        stats = http.get("/v1/stats").json()
    assert stats["redisCluster"] is (REDIS_KIND == "cluster")
    assert stats["redis"]


def test_accounts_live_on_several_masters_and_sync(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    redis_server: RedisServer,
    user_factory: Callable[..., MailUser],
) -> None:
    made: dict[str, MailUser] = {}
    with mailgate.client() as http:
        for _ in range(ACCOUNTS):
            user = user_factory("clu")
            account = f"clu-{uuid.uuid4().hex[:8]}"
            body = imap_account(account, user.name, user.password, dovecot.host, dovecot.imap_port)
            assert http.post("/v1/account", json=body).status_code == 200
            made[account] = user
        for account in made:
            wait_state(http, account, "connected")
    raw = sync_client(redis_server.url)
    try:
        assert isinstance(raw, redis.cluster.RedisCluster) is (REDIS_KIND == "cluster")
        if isinstance(raw, redis.cluster.RedisCluster):
            homes = {a: raw.get_node_from_key(f"mg:{{{a}}}:account").name for a in made}
            assert len(set(homes.values())) >= 2, homes
            for account in made:  # every per-account key shares the account's slot
                slots = {raw.keyslot(k) for k in raw.scan_iter(match=f"mg:{{{account}}}:*")}
                assert len(slots) == 1, (account, slots)
    finally:
        raw.close()
    # new mail on accounts homed on different masters is announced once each
    for account, user in made.items():
        dovecot.deliver(user.name, message(f"to {account}"))
    for account in made:
        wait_event(redis_server.url, account, "messageNew")
    for account in made:
        news = [e for e in account_events(redis_server.url, account) if e["event"] == "messageNew"]
        assert [e["data"]["subject"] for e in news] == [f"to {account}"]
    with mailgate.client() as http:
        for account in made:
            http.delete(f"/v1/account/{account}")
