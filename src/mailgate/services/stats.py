"""Service statistics: ``GET /v1/stats`` and the Prometheus ``/metrics`` exposition."""

from __future__ import annotations

import asyncio
import platform
import time
from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from redis.asyncio import Redis

from mailgate import __version__
from mailgate.domain.account import AccountState
from mailgate.services.sending.outbox import Outbox
from mailgate.services.webhooks.queue import WebhookQueue
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.leases import LeaseStore
from mailgate.store.redis import str_map, text

STATE_PAGE = 1000  # account states read per Redis round trip


class StatsService:
    def __init__(self, redis: Redis, accounts: AccountStore, leases: LeaseStore) -> None:
        self.redis = redis
        self.accounts = accounts
        self.leases = leases
        self.started = time.time()

    async def account_states(self) -> Counter[str]:
        counts: Counter[str] = Counter({s.value: 0 for s in AccountState})
        total = await self.accounts.count()
        for start in range(0, total, STATE_PAGE):
            ids = await self.accounts.ids(start, start + STATE_PAGE - 1)
            for state in await self.accounts.get_states(ids):
                counts[state.state.value] += 1
        return counts

    async def redis_info(self) -> tuple[str, float, int]:
        started = time.perf_counter()
        info = await self.redis.info("server")
        ping_ms = (time.perf_counter() - started) * 1000
        memory = await self.redis.info("memory")
        return str(info.get("redis_version", "")), ping_ms, int(memory.get("used_memory", 0))

    async def nodes(self) -> list[dict[str, str]]:
        out = []
        for node_id in await self.leases.live_nodes():
            info = str_map(await self.redis.hgetall(keys.node(node_id)))
            out.append({"id": node_id, **info})
        return out

    async def stats(self) -> dict[str, Any]:
        version, ping_ms, _ = await self.redis_info()
        states = await self.account_states()
        return {
            "version": __version__,
            "license": "MIT",
            "accounts": await self.accounts.count(),
            "node": platform.python_version(),
            "redis": version,
            "redisSoftware": "redis",
            "redisCluster": False,
            "redisPing": round(ping_ms, 3),
            "arch": platform.machine(),
            "uptime": round(time.time() - self.started, 1),
            "connections": dict(states),
            "nodes": await self.nodes(),
        }

    async def event_loop_lag(self) -> float:
        """Seconds a zero-length sleep takes beyond zero: how busy this process's loop is."""
        started = time.perf_counter()
        await asyncio.sleep(0)
        return time.perf_counter() - started

    async def metrics(self, *, runners: int) -> bytes:
        """Prometheus text exposition, computed at scrape time from Redis."""
        registry = CollectorRegistry()
        by_state = Gauge(
            "mailgate_accounts", "Registered accounts by connection state", ["state"],
            registry=registry,
        )  # fmt: skip
        for state, count in (await self.account_states()).items():
            by_state.labels(state=state).set(count)
        owned = Gauge("mailgate_accounts_owned", "Accounts run by this process", registry=registry)
        owned.set(runners)
        version, ping_ms, used = await self.redis_info()
        Gauge("mailgate_redis_ping_seconds", "Redis round-trip time", registry=registry).set(
            ping_ms / 1000
        )
        Gauge("mailgate_redis_used_memory_bytes", "Redis used_memory", registry=registry).set(used)
        nodes = Gauge("mailgate_nodes", "Live mailgate processes", registry=registry)
        nodes.set(len(await self.leases.live_nodes()))
        up = Gauge(
            "mailgate_uptime_seconds", "Seconds since this process started", registry=registry
        )
        up.set(time.time() - self.started)
        info = Gauge(
            "mailgate_info", "Version information", ["version", "redis"], registry=registry
        )
        info.labels(version=__version__, redis=text(version)).set(1)
        lag = Gauge("mailgate_event_loop_lag_seconds", "Event-loop lag", registry=registry)
        lag.set(await self.event_loop_lag())
        webhooks = (await WebhookQueue(self.redis).stats()).get("jobs", {})
        wh = Gauge(
            "mailgate_webhook_queue", "Webhook events by state", ["state"], registry=registry
        )
        for name in ("waiting", "delayed", "active", "completed", "failed"):
            value = webhooks.get(name)
            if isinstance(value, int):
                wh.labels(state=name).set(value)
        outbox = Gauge("mailgate_outbox_jobs", "Outbox jobs by state", ["state"], registry=registry)
        for name, count in (await Outbox(self.redis).counts()).items():
            outbox.labels(state=name).set(count)
        return generate_latest(registry)
