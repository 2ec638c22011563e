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


def event_fields(
    account: str,
    event: str,
    data: dict[str, Any],
    *,
    path: str | None = None,
    special_use: str | None = None,
) -> dict[str, str]:
    """The stream entry of one event."""
    entry = {
        "account": account,
        "date": iso_now(),
        "event": event,
        "path": path,
        "specialUse": special_use,
        "data": data,
    }
    return {"e": json.dumps(entry, separators=(",", ":"), default=str)}


_SIGNAL = """
redis.call('zadd', KEYS[1], 'NX', ARGV[1], ARGV[2])
redis.call('publish', ARGV[3], ARGV[2])
"""


def stage_append(pipe: Any, account: str, fields: dict[str, str]) -> None:
    """Queue the XADD of one event and its waiting count on ``pipe`` (one slot: MULTI-safe)."""
    pipe.xadd(keys.events(account), fields, maxlen=EVENT_LOG_MAXLEN, approximate=True)
    pipe.hincrby(keys.webhook_state(account), "waiting", 1)


async def signal_appended(redis: Redis, account: str) -> None:
    """Schedule the account for webhook delivery and wake the workers.

    The schedule (ZADD NX: an account already scheduled keeps its time, e.g. a retry backoff)
    lives in the instance slot, so it cannot share the transaction that appended the events;
    the webhook workers' recovery scan re-marks an account whose mark was lost.
    """
    # one script, not a pipeline: a cluster client refuses PUBLISH in a pipeline
    await redis.eval(
        _SIGNAL, 1, keys.WEBHOOK_PENDING, int(time.time() * 1000), account, keys.WEBHOOK_WAKE
    )


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
        fields = event_fields(account, event, data, path=path, special_use=special_use)
        async with self.redis.pipeline(transaction=True) as pipe:
            stage_append(pipe, account, fields)
            event_id, _ = await pipe.execute()
        await signal_appended(self.redis, account)
        return text(event_id)

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
