"""The control channel: account lifecycle messages every process acts on at once."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from mailgate.store import keys


async def publish_control(redis: Redis, kind: str, account: str) -> None:
    """Tell every process about an account change: added, updated, deleted, reconnect, sync."""
    await redis.publish(keys.CONTROL_CHANNEL, json.dumps({"type": kind, "account": account}))
