"""The durable per-account event log: a Redis stream each event is appended to before delivery."""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from mailgate.store import keys
from mailgate.store.redis import text

EVENT_LOG_MAXLEN = 10_000  # approximate number of events kept per account


def iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class EventLog:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def append(
        self,
        account: str,
        event: str,
        data: dict[str, Any],
        *,
        path: str | None = None,
        special_use: str | None = None,
    ) -> str:
        """Append one event; returns its stream id (the event id)."""
        entry = {
            "account": account,
            "date": iso_now(),
            "event": event,
            "path": path,
            "specialUse": special_use,
            "data": data,
        }
        # One round trip, executed in order. The XADD and the waiting counter share the account's
        # slot; the delivery schedule (ZADD NX: an account already scheduled keeps its time, e.g.
        # a retry backoff) lives in the instance slot, so it cannot be in the same transaction:
        # the webhook workers' recovery scan re-marks an account whose mark was lost.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                keys.events(account),
                {"e": json.dumps(entry, separators=(",", ":"))},
                maxlen=EVENT_LOG_MAXLEN,
                approximate=True,
            )
            pipe.hincrby(keys.webhook_state(account), "waiting", 1)
            pipe.zadd(keys.WEBHOOK_PENDING, {account: int(time.time() * 1000)}, nx=True)
            pipe.publish(keys.WEBHOOK_WAKE, account)
            event_id, *_ = await pipe.execute()
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    async def recent(self, account: str, count: int = 50) -> list[dict[str, Any]]:
        rows = await self.redis.xrevrange(keys.events(account), count=count)
        out = []
        for event_id, fields in rows or []:
            if not fields or event_id is None:
                continue
            entry = json.loads(fields[b"e"])
            entry["id"] = text(event_id)
            out.append(entry)
        return out
