"""Read models of the admin web UI: what the dashboard and the account page show.

Everything here is read-only and bounded: per-account facts for many accounts are read in
pipelines of ``SCAN_PAGE`` commands (one round trip per page of accounts, never one per account),
and lists are cut at named limits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis

from mailgate import __version__
from mailgate.services.stats import StatsService
from mailgate.services.webhooks import WebhookQueue
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.redis import str_map, text

SCAN_PAGE = 1000  # accounts whose sync facts are read in one pipelined round trip
MAX_SCANNED = 20_000  # accounts looked at for "indexing now" (beyond: not listed)
MAX_INDEXING_SHOWN = 50  # accounts listed as indexing on the dashboard
MAX_WEBHOOK_ERRORS = 10  # accounts in webhook retry backoff listed with their last error


def indexing_view(meta: dict[str, str], default_indexer: str) -> dict[str, Any] | None:
    """The ``indexing`` field of account info, from the sync facts hash (None when empty)."""
    if not meta:
        return None
    folders_total = int(meta.get("foldersTotal", 0) or 0)
    messages_total = int(meta.get("messagesTotal", 0) or 0)
    folders_done = int(meta.get("foldersDone", 0) or 0)
    messages_done = int(meta.get("messagesDone", 0) or 0)
    return {
        "indexer": meta.get("indexer", default_indexer),
        "initialized": meta.get("initialized") == "1",
        "folders": {"done": folders_done, "total": folders_total},
        "messages": {"done": messages_done, "total": messages_total},
    }


def percent(done: int, total: int) -> int:
    """Progress as a whole percentage (100 when there is nothing to do)."""
    if total <= 0:
        return 100
    return max(0, min(100, done * 100 // total))


@dataclass
class Dashboard:
    total: int
    states: dict[str, int]
    indexing: list[dict[str, Any]]
    webhooks: dict[str, Any]
    webhook_errors: list[dict[str, Any]]
    outbox: dict[str, int] | None
    redis_version: str
    redis_memory: int
    redis_ping_ms: float
    version: str = __version__
    uptime: float = 0.0
    nodes: list[dict[str, str]] = field(default_factory=list)


class AdminOverview:
    def __init__(self, redis: Redis, accounts: AccountStore, stats: StatsService) -> None:
        self.redis = redis
        self.accounts = accounts
        self.stats = stats

    async def indexing_accounts(self, default_indexer: str) -> list[dict[str, Any]]:
        """Accounts whose first index is under way, with progress (pipelined per page)."""
        total = min(await self.accounts.count(), MAX_SCANNED)
        out: list[dict[str, Any]] = []
        for start in range(0, total, SCAN_PAGE):
            ids = await self.accounts.ids(start, min(start + SCAN_PAGE, total) - 1)
            if not ids:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for account in ids:
                    pipe.hgetall(keys.sync_meta(account))
                metas = await pipe.execute()
            for account, raw in zip(ids, metas, strict=True):
                view = indexing_view(str_map(raw or {}), default_indexer)
                if view is None or view["initialized"]:
                    continue
                view["account"] = account
                view["percent"] = percent(view["messages"]["done"], view["messages"]["total"])
                out.append(view)
                if len(out) >= MAX_INDEXING_SHOWN:
                    return out
        return out

    async def webhook_errors(self) -> list[dict[str, Any]]:
        """Accounts whose webhook delivery is in retry backoff, with the last error."""
        rows = cast(
            list[tuple[bytes, float]],
            await self.redis.zrange(keys.WEBHOOK_RETRY, 0, MAX_WEBHOOK_ERRORS - 1, withscores=True),
        )
        if not rows:
            return []
        accounts = [text(account) for account, _ in rows]
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.hmget(keys.webhook_state(account), ["lastError", "attempts"])
            states = await pipe.execute()
        out = []
        for account, (_, score), (error, attempts) in zip(accounts, rows, states, strict=True):
            out.append(
                {
                    "account": account,
                    "lastError": text(error) if error is not None else "",
                    "attempts": int(attempts or 0),
                    "nextAttempt": time.strftime(
                        "%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(score) / 1000)
                    ),
                }
            )
        return out

    async def dashboard(self, *, default_indexer: str, outbox: dict[str, int] | None) -> Dashboard:
        states = await self.stats.account_states()
        version, ping_ms, memory = await self.stats.redis_info()
        return Dashboard(
            total=sum(states.values()),
            states={k: v for k, v in states.items() if v},
            indexing=await self.indexing_accounts(default_indexer),
            webhooks=await WebhookQueue(self.redis).stats(),
            webhook_errors=await self.webhook_errors(),
            outbox=outbox,
            redis_version=version,
            redis_memory=memory,
            redis_ping_ms=ping_ms,
            uptime=time.time() - self.stats.started,
            nodes=await self.stats.nodes(),
        )

    async def indexed_paths(self, account: str) -> dict[str, int]:
        """Mailbox path -> mailbox number of every folder the indexer tracks for the account."""
        raw = await self.redis.hgetall(keys.synced_mailboxes(account))
        return {k: int(v) for k, v in str_map(raw).items()}
