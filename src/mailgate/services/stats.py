"""Service statistics: ``GET /v1/stats`` and the Prometheus ``/metrics`` exposition.

``/metrics`` is computed at scrape time from Redis (accounts by state and by owning process,
first indexes under way, the webhook backlog of the event logs, the outbox), with bounded work
per scrape, followed by the process's own counters and histograms (``extra`` registries: the
wiring passes ``runtime/metrics.py``'s).
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, cast

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from redis.asyncio import Redis

from mailgate import __version__
from mailgate.domain.account import AccountState
from mailgate.services.sending.outbox import Outbox
from mailgate.services.webhooks.queue import WebhookQueue
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.leases import LeaseStore
from mailgate.store.redis import is_cluster, str_map, text

STATE_PAGE = 1000  # account states read per Redis round trip
BACKLOG_SCAN = 100  # accounts looked at (first due, in backoff) for the oldest undelivered event
OUTBOX_SCAN = 1000  # queued outbox jobs looked at for their attempts
WEBHOOK_RESULTS = ("completed", "failed", "skipped")


class _Families:
    """Metric families computed once per scrape (counters kept in Redis, not in-process)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return self.families


def age_seconds(oldest_ms: float | None, now_ms: float) -> float:
    """Seconds since ``oldest_ms`` (0 when there is nothing, or it lies in the future)."""
    if oldest_ms is None:
        return 0.0
    return max(0.0, (now_ms - oldest_ms) / 1000)


def stream_id_ms(event_id: str) -> int:
    """The millisecond time a Redis stream id (``<ms>-<seq>``) was assigned."""
    return int(event_id.partition("-")[0])


class StatsService:
    def __init__(self, redis: Redis, accounts: AccountStore, leases: LeaseStore) -> None:
        self.redis = redis
        self.accounts = accounts
        self.leases = leases
        self.started = time.time()

    async def account_states(self) -> Counter[str]:
        return (await self._scan_states())[0]

    async def _scan_states(self) -> tuple[Counter[str], list[str]]:
        """Accounts by state, and the ids of those in ``syncing``."""
        counts: Counter[str] = Counter({s.value: 0 for s in AccountState})
        syncing: list[str] = []
        total = await self.accounts.count()
        for start in range(0, total, STATE_PAGE):
            ids = await self.accounts.ids(start, start + STATE_PAGE - 1)
            for account, state in zip(ids, await self.accounts.get_states(ids), strict=True):
                counts[state.state.value] += 1
                if state.state is AccountState.SYNCING:
                    syncing.append(account)
        return counts, syncing

    async def first_indexes(self, syncing: Sequence[str]) -> tuple[int, int]:
        """Accounts whose first index is under way (it runs while they are ``syncing``: begun,
        not yet marked initialized), and the messages their folders held when it began."""
        if not syncing:
            return 0, 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in syncing:
                pipe.hmget(
                    keys.sync_meta(account), ["initialized", "foldersTotal", "messagesTotal"]
                )
            replies = await pipe.execute()
        accounts = messages = 0
        for initialized, folders, total in replies:
            if folders is not None and text(initialized or b"") != "1":
                accounts += 1
                messages += int(total or 0)
        return accounts, messages

    async def redis_info(self) -> tuple[str, float, int]:
        started = time.perf_counter()
        info = await self.redis.info("server")
        ping_ms = (time.perf_counter() - started) * 1000
        if is_cluster(self.redis):  # the memory of every master, summed
            per_node = await cast(Any, self.redis).info("memory", target_nodes="primaries")
            nodes = per_node.values() if "used_memory" not in per_node else [per_node]
            used = sum(int(n.get("used_memory", 0)) for n in nodes if isinstance(n, dict))
        else:
            used = int((await self.redis.info("memory")).get("used_memory", 0))
        return str(info.get("redis_version", "")), ping_ms, used

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
            "redisCluster": is_cluster(self.redis),
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

    async def oldest_undelivered_ms(self) -> int | None:
        """Stream time of the oldest event no webhook worker has handled yet, among the
        ``BACKLOG_SCAN`` accounts due first and the ones in retry backoff (bounded work)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(keys.WEBHOOK_PENDING, 0, BACKLOG_SCAN - 1)
            pipe.zrange(keys.WEBHOOK_RETRY, 0, BACKLOG_SCAN - 1)
            due, retrying = await pipe.execute()
        accounts = list(dict.fromkeys(text(a) for a in [*due, *retrying]))
        if not accounts:
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.hget(keys.webhook_state(account), "cursor")
            cursors = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for account, cursor in zip(accounts, cursors, strict=True):
                start = f"({text(cursor)}" if cursor else "-"
                pipe.xrange(keys.events(account), min=start, max="+", count=1)
            firsts = await pipe.execute()
        times = [stream_id_ms(text(rows[0][0])) for rows in firsts if rows]
        return min(times) if times else None

    async def metrics(self, *, runners: int, extra: Sequence[CollectorRegistry] = ()) -> bytes:
        """Prometheus text exposition: gauges computed now from Redis, then ``extra``."""
        registry = CollectorRegistry()
        families = _Families()
        registry.register(families)
        await self._account_metrics(registry, runners)
        await self._redis_metrics(registry)
        await self._webhook_metrics(registry, families)
        await self._outbox_metrics(registry)
        lag = Gauge("mailgate_event_loop_lag_seconds", "Event-loop lag", registry=registry)
        lag.set(await self.event_loop_lag())
        up = Gauge(
            "mailgate_uptime_seconds", "Seconds since this process started", registry=registry
        )
        up.set(time.time() - self.started)
        return generate_latest(registry) + b"".join(generate_latest(r) for r in extra)

    async def _account_metrics(self, registry: CollectorRegistry, runners: int) -> None:
        states, syncing = await self._scan_states()
        by_state = Gauge(
            "mailgate_accounts", "Registered accounts by connection state", ["state"],
            registry=registry,
        )  # fmt: skip
        for state, count in states.items():
            by_state.labels(state=state).set(count)
        owned = Gauge("mailgate_accounts_owned", "Accounts run by this process", registry=registry)
        owned.set(runners)
        nodes = await self.nodes()
        Gauge("mailgate_nodes", "Live mailgate processes", registry=registry).set(len(nodes))
        by_node = Gauge(
            "mailgate_node_accounts", "Accounts owned by each live process (its last heartbeat)",
            ["node", "host", "roles"], registry=registry,
        )  # fmt: skip
        for node in nodes:
            labels = {
                "node": node["id"],
                "host": node.get("host", ""),
                "roles": node.get("roles", ""),
            }
            by_node.labels(**labels).set(int(node.get("accounts", "0") or 0))
        indexing, messages = await self.first_indexes(syncing)
        Gauge(
            "mailgate_accounts_first_index", "Accounts whose first index is under way",
            registry=registry,
        ).set(indexing)  # fmt: skip
        Gauge(
            "mailgate_first_index_messages",
            "Messages in the folders of the accounts whose first index is under way",
            registry=registry,
        ).set(messages)

    async def _redis_metrics(self, registry: CollectorRegistry) -> None:
        version, ping_ms, used = await self.redis_info()
        Gauge("mailgate_redis_ping_seconds", "Redis round-trip time", registry=registry).set(
            ping_ms / 1000
        )
        Gauge("mailgate_redis_used_memory_bytes", "Redis used_memory", registry=registry).set(used)
        info = Gauge(
            "mailgate_info", "Version information", ["version", "redis"], registry=registry
        )
        info.labels(version=__version__, redis=text(version)).set(1)

    async def _webhook_metrics(self, registry: CollectorRegistry, families: _Families) -> None:
        jobs = cast(dict[str, Any], (await WebhookQueue(self.redis).stats()).get("jobs", {}))
        wh = Gauge(
            "mailgate_webhook_queue", "Webhook events by state", ["state"], registry=registry
        )
        for name in ("waiting", "delayed", "active", "completed", "failed"):
            value = jobs.get(name)
            if isinstance(value, int):
                wh.labels(state=name).set(value)
        now = time.time() * 1000
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.WEBHOOK_PENDING)
            pipe.zrange(keys.WEBHOOK_PENDING, 0, 0, withscores=True)
            pipe.hgetall(keys.WEBHOOK_COUNTERS)
            scheduled, first, counters = await pipe.execute()
        Gauge(
            "mailgate_event_log_undelivered",
            "Events appended to the event logs and not yet handled by webhook delivery",
            registry=registry,
        ).set(int(jobs.get("waiting", 0)) + int(jobs.get("delayed", 0)))
        Gauge(
            "mailgate_event_log_oldest_undelivered_seconds",
            "Age of the oldest event not yet handled by webhook delivery",
            registry=registry,
        ).set(age_seconds(await self.oldest_undelivered_ms(), now))
        Gauge(
            "mailgate_webhook_queue_accounts", "Accounts with events waiting for delivery",
            registry=registry,
        ).set(int(scheduled))  # fmt: skip
        Gauge(
            "mailgate_webhook_queue_lag_seconds",
            "How long the most overdue account has been due for delivery without a worker",
            registry=registry,
        ).set(age_seconds(float(first[0][1]) if first else None, now))
        totals = str_map(counters)
        results = CounterMetricFamily(
            "mailgate_webhook_events", "Events handled by webhook delivery, by result",
            labels=["result"],
        )  # fmt: skip
        for result in WEBHOOK_RESULTS:
            results.add_metric([result], int(totals.get(result, 0)))
        families.families.append(results)

    async def _outbox_metrics(self, registry: CollectorRegistry) -> None:
        outbox = Gauge("mailgate_outbox_jobs", "Outbox jobs by state", ["state"], registry=registry)
        for name, count in (await Outbox(self.redis).counts()).items():
            outbox.labels(state=name).set(count)
        due = cast(
            list[tuple[bytes, float]],
            await self.redis.zrange(keys.OUTBOX_DUE, 0, OUTBOX_SCAN - 1, withscores=True),
        )
        Gauge(
            "mailgate_outbox_oldest_due_seconds",
            "How long the most overdue queued outbox job has been due",
            registry=registry,
        ).set(age_seconds(due[0][1] if due else None, time.time() * 1000))
        attempts: list[int] = []
        if due:
            async with self.redis.pipeline(transaction=False) as pipe:
                for qid, _ in due:
                    pipe.hget(keys.outbox_job(text(qid)), "attemptsMade")
                attempts = [int(a or 0) for a in await pipe.execute()]
        Gauge(
            "mailgate_outbox_jobs_retrying",
            "Queued outbox jobs with at least one failed delivery attempt",
            registry=registry,
        ).set(sum(1 for a in attempts if a > 0))
        Gauge(
            "mailgate_outbox_attempts_made",
            "Failed delivery attempts so far of the queued outbox jobs",
            registry=registry,
        ).set(sum(attempts))
