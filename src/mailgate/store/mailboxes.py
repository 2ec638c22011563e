"""Per-account mailbox numbers: each (path, UIDVALIDITY) pair gets a small stable number.

Message ids pack this number with the UID (DESIGN.md §1), so ids stay valid across restarts
and flushes: numbers are never reused and survive an index flush.
"""

from __future__ import annotations

from redis.asyncio import Redis

from mailgate.store import keys
from mailgate.store.redis import text

_ASSIGN = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return tonumber(existing) end
local n = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], n)
redis.call('HSET', KEYS[2], n, ARGV[1])
return n
"""

SEPARATOR = "\0"


def mailbox_key(path: str, uidvalidity: int) -> str:
    return f"{path}{SEPARATOR}{uidvalidity}"


class MailboxRegistry:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._assign = redis.register_script(_ASSIGN)

    async def number(self, account: str, path: str, uidvalidity: int) -> int:
        """The mailbox number of (path, uidvalidity), assigned on first use."""
        result = await self._assign(
            keys=[
                keys.mailbox_ids(account),
                keys.mailbox_paths(account),
                keys.mailbox_seq(account),
            ],
            args=[mailbox_key(path, uidvalidity)],
        )
        return int(result)

    async def lookup(self, account: str, number: int) -> tuple[str, int] | None:
        """(path, uidvalidity) of a mailbox number, or None if unknown."""
        raw = await self.redis.hget(keys.mailbox_paths(account), str(number))
        if raw is None:
            return None
        path, _, uidvalidity = text(raw).rpartition(SEPARATOR)
        return path, int(uidvalidity)
