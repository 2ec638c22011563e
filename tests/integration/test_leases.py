"""Lease store operations against the session's Redis (one server, or the cluster in the cluster
pass, where renewals take the pipeline path)."""

from __future__ import annotations

import uuid

import pytest

from mailgate.store import keys
from mailgate.store.leases import RENEW_BATCH, LeaseStore
from mailgate.store.redis import connect
from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


async def test_renew_many_renews_only_our_own_leases(redis_server: RedisServer) -> None:
    redis = connect(redis_server.url)
    ours, theirs = LeaseStore(redis, f"a-{uuid.uuid4().hex}"), LeaseStore(redis, "b")
    tag = uuid.uuid4().hex[:6]
    mine = [f"lease-{tag}-{i}" for i in range(RENEW_BATCH + 5)]  # more than one script batch
    other, missing = f"lease-{tag}-other", f"lease-{tag}-missing"
    try:
        for account in mine:
            assert await ours.claim(account, ttl_ms=2_000) is not None
        assert await theirs.claim(other, ttl_ms=2_000) is not None
        order = [mine[0], other, missing, *mine[1:]]
        renewed = await ours.renew_many(order, ttl_ms=60_000)
        assert renewed == [True, False, False, *[True] * (len(mine) - 1)]
        assert 2_000 < await redis.pttl(keys.lease(mine[-1])) <= 60_000
        assert await redis.pttl(keys.lease(other)) <= 2_000  # not extended by us
        assert await ours.owner(other) == "b"
        assert await ours.renew_many([]) == []
    finally:
        for account in [*mine, other]:
            await redis.delete(keys.lease(account), keys.fence(account))
        await redis.aclose()
