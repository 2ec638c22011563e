"""Address blocklists (EmailEngine's suppression lists, e.g. for unsubscribes).

Lists are created ad hoc: the first address added to a list id makes the list, removing its last
address removes it. Per list, a hash holds each address's entry (JSON: account, reason, source,
messageId, remoteAddress, userAgent, created) and a zset orders the addresses by the time they
were listed, for paging; ``keys.BLOCKLISTS`` indexes the lists. All of it is in the instance
slot, so add and remove are single atomic steps.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from mailgate.errors import BadRequest
from mailgate.store import keys
from mailgate.store.events import iso_now
from mailgate.store.redis import text

MAX_LIST_ID = 253  # a hostname at most
MAX_ADDRESS = 320
MAX_REASON = 256
LIST_ID_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$", re.I)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# removes an address; drops the list from the index when it was the last one (atomically)
_REMOVE = """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[2])
end
return removed
"""


class BlocklistAddIn(BaseModel):
    """The body of ``POST /v1/blocklist/{listId}``."""

    model_config = ConfigDict(extra="ignore")

    account: str = Field(min_length=1, max_length=256)
    recipient: str = Field(min_length=3, max_length=MAX_ADDRESS)
    reason: str = Field(default="block", min_length=1, max_length=MAX_REASON)


def check_list_id(list_id: str) -> str:
    """The list id, lower-cased; BadRequest unless it is in subdomain-name format."""
    if len(list_id) > MAX_LIST_ID or not LIST_ID_RE.match(list_id):
        raise BadRequest('"listId" must be a valid hostname', key="listId")
    return list_id.lower()


def check_recipient(recipient: str) -> str:
    value = recipient.strip()
    if len(value) > MAX_ADDRESS or not EMAIL_RE.match(value):
        raise BadRequest('"recipient" must be a valid email', key="recipient")
    return value.lower()


class BlocklistService:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._remove = redis.register_script(_REMOVE)

    async def lists(self, page: int, page_size: int) -> dict[str, Any]:
        total = int(await self.redis.zcard(keys.BLOCKLISTS))
        start = page * page_size
        ids = [
            text(i) for i in await self.redis.zrange(keys.BLOCKLISTS, start, start + page_size - 1)
        ]
        counts: list[int] = []
        if ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                for list_id in ids:
                    pipe.hlen(keys.blocklist_entries(list_id))
                counts = [int(n) for n in await pipe.execute()]
        return {
            "total": total,
            "page": page,
            "pages": max(1, -(-total // page_size)),
            "blocklists": [
                {"listId": list_id, "count": count}
                for list_id, count in zip(ids, counts, strict=True)
            ],
        }

    async def entries(self, list_id: str, page: int, page_size: int) -> dict[str, Any]:
        """One page of a list's entries, most recently listed first (an unknown list is empty)."""
        list_id = check_list_id(list_id)
        order = keys.blocklist_order(list_id)
        total = int(await self.redis.zcard(order))
        start = page * page_size
        recipients = [
            text(r) for r in await self.redis.zrevrange(order, start, start + page_size - 1)
        ]
        addresses: list[dict[str, Any]] = []
        if recipients:
            raws = await self.redis.hmget(keys.blocklist_entries(list_id), recipients)
            for recipient, raw in zip(recipients, raws, strict=True):
                if raw is not None:
                    entry = json.loads(raw)
                    entry["recipient"] = recipient
                    addresses.append(entry)
        return {
            "listId": list_id,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // page_size)),
            "addresses": addresses,
        }

    async def add(
        self,
        list_id: str,
        body: BlocklistAddIn,
        *,
        source: str = "api",
        remote_address: str | None = None,
        user_agent: str | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """List an address (again: its entry is replaced); ``added`` is False when it was listed."""
        list_id = check_list_id(list_id)
        recipient = check_recipient(body.recipient)
        entry: dict[str, Any] = {
            "account": body.account,
            "source": source,
            "reason": body.reason,
            "created": iso_now(),
        }
        for name, value in (
            ("messageId", message_id),
            ("remoteAddress", remote_address),
            ("userAgent", user_agent),
        ):
            if value:
                entry[name] = value
        now = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.blocklist_entries(list_id), recipient, json.dumps(entry))
            pipe.zadd(keys.blocklist_order(list_id), {recipient: now})
            pipe.zadd(keys.BLOCKLISTS, {list_id: now}, nx=True)
            created, _, _ = await pipe.execute()
        return {"success": True, "added": bool(created)}

    async def remove(self, list_id: str, recipient: str) -> dict[str, Any]:
        list_id = check_list_id(list_id)
        address = check_recipient(recipient)
        removed = await self._remove(
            keys=[
                keys.blocklist_entries(list_id),
                keys.blocklist_order(list_id),
                keys.BLOCKLISTS,
            ],
            args=[address, list_id],
        )
        return {"deleted": bool(removed)}

    async def is_listed(self, list_id: str, recipient: str) -> bool:
        """Whether ``recipient`` is on the list (for senders that honour list ids)."""
        return bool(
            await self.redis.hexists(keys.blocklist_entries(list_id.lower()), recipient.lower())
        )
