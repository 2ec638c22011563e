"""The webhook delivery state in Redis: schedule, per-account cursor and lock, counters.

Per account (hash tag ``{account}``, the same slot as its event stream):

- ``webhook_state``: ``cursor`` = id of the last event handled (delivered, skipped or given
  up), ``attemptId``/``attempts`` = the head event's failed attempts so far, ``waiting`` =
  events appended and not yet handled (EventLog.append increments it), ``lastError``.
- ``webhook_lock``: the delivery lock, ``SET NX PX`` with an owner token; renewed while held,
  and every write of the state checks the token in the same script, so a worker that lost its
  lock (paused past the TTL) can never move the cursor.

Instance-wide (tag ``{mg}``):

- ``WEBHOOK_PENDING``: accounts that may have undelivered events, scored by when they are next
  due (ms). EventLog.append adds an account with ``ZADD NX`` (score now). A worker *claims* due
  accounts by pushing their score ``CLAIM_MS`` into the future (one script), so other workers do
  not pick the same account while it is served; a crashed worker's accounts become due again
  after ``CLAIM_MS``. A retry backoff is the score set to the retry time.
- ``WEBHOOK_RETRY``: accounts in backoff (for the queue counters).
- ``WEBHOOK_COUNTERS``: completed / failed / skipped totals.

Removing a drained account from the schedule races with a concurrent append; the rule that
closes the race: the worker removes the account, *then* checks the stream again and re-adds the
account when the stream grew; EventLog.append writes the stream, *then* the schedule.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from mailgate.store import keys
from mailgate.store.redis import stage_script

NOTIFY_QUEUE = "notify"
CLAIM_MS = 20_000  # a claimed account is not handed to another worker for this long
LOCK_TTL_MS = 15_000  # delivery lock TTL, renewed every LOCK_TTL_MS / 3 while delivering
STATS_MAX_ACCOUNTS = 10_000  # the queue counters look at this many scheduled accounts at most
RECOVERY_PAGE = 500  # accounts checked per round trip by the recovery scan

_LUA_IDS = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function gt(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  if am ~= bm then return am > bm end
  return as > bs
end
"""

_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return {{}, false} end
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, account in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), account)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {due, first[2] or false}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: state, lock. ARGV: token, event id, events handled by this move.
# 0: lock lost; 1: moved; 2: the cursor is already at or past the id (nothing written)
_ADVANCE = (
    _LUA_IDS
    + """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local cursor = redis.call('HGET', KEYS[1], 'cursor')
if cursor and not gt(ARGV[2], cursor) then return 2 end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2])
redis.call('HDEL', KEYS[1], 'attemptId', 'attempts')
if redis.call('HINCRBY', KEYS[1], 'waiting', -tonumber(ARGV[3])) < 0 then
  redis.call('HSET', KEYS[1], 'waiting', 0)
end
return 1
"""
)

# KEYS: state, lock. ARGV: token, event id, attempt number, error text
_FAILED = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'attemptId', ARGV[2], 'attempts', ARGV[3], 'lastError', ARGV[4])
return 1
"""

# KEYS: stream, state, lock. ARGV: token.
# -1: lock lost; 1: nothing after the cursor (waiting reset to 0); 0: more events to deliver
_DRAINED = (
    _LUA_IDS
    + """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
  return 1
end
local cursor = redis.call('HGET', KEYS[2], 'cursor')
if cursor and not gt(last[1][1], cursor) then
  redis.call('HSET', KEYS[2], 'waiting', 0)
  return 1
end
return 0
"""
)


def parse_id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def now_ms() -> int:
    return int(time.time() * 1000)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@dataclass(frozen=True)
class HeadState:
    cursor: str | None
    attempt_id: str | None
    attempts: int


@dataclass(frozen=True)
class Event:
    id: str
    entry: dict[str, Any]


class LockLost(Exception):
    """Another worker owns the account now; stop delivering it."""


class WebhookQueue:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._advance = redis.register_script(_ADVANCE)
        self._failed = redis.register_script(_FAILED)
        self._drained = redis.register_script(_DRAINED)

    # --- schedule -------------------------------------------------------------------------------
    async def claim_due(self, limit: int, claim_ms: int = CLAIM_MS) -> tuple[list[str], int | None]:
        """Accounts due now (at most ``limit``), claimed; and the earliest score left (ms)."""
        due, first = await self._claim(
            keys=[keys.WEBHOOK_PENDING, keys.queue_paused(NOTIFY_QUEUE)],
            args=[now_ms(), max(0, limit), claim_ms],
        )
        return [_text(a) for a in due], int(float(_text(first))) if first is not None else None

    async def schedule(self, account: str, at_ms: int, *, only_existing: bool = False) -> None:
        await self.redis.zadd(keys.WEBHOOK_PENDING, {account: at_ms}, xx=only_existing)

    async def mark_pending(self, accounts: list[str]) -> int:
        """Schedule accounts now unless already scheduled (keeps a backoff time)."""
        if not accounts:
            return 0
        stamp = now_ms()
        added = await self.redis.zadd(keys.WEBHOOK_PENDING, dict.fromkeys(accounts, stamp), nx=True)
        return int(added or 0)

    async def unschedule(self, account: str) -> None:
        await self.redis.zrem(keys.WEBHOOK_PENDING, account)

    async def backoff(self, account: str, at_ms: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.WEBHOOK_PENDING, {account: at_ms})
            pipe.zadd(keys.WEBHOOK_RETRY, {account: at_ms})
            await pipe.execute()

    # --- lock -----------------------------------------------------------------------------------
    async def acquire(self, account: str, token: str, ttl_ms: int = LOCK_TTL_MS) -> bool:
        return bool(await self.redis.set(keys.webhook_lock(account), token, nx=True, px=ttl_ms))

    async def renew(self, account: str, token: str, ttl_ms: int = LOCK_TTL_MS) -> bool:
        return bool(await self._renew(keys=[keys.webhook_lock(account)], args=[token, ttl_ms]))

    async def release(self, account: str, token: str) -> None:
        await self._release(keys=[keys.webhook_lock(account)], args=[token])

    # --- per-account state ----------------------------------------------------------------------
    async def head(self, account: str) -> HeadState:
        cursor, attempt_id, attempts = await self.redis.hmget(
            keys.webhook_state(account), ["cursor", "attemptId", "attempts"]
        )
        return HeadState(
            cursor=_text(cursor) if cursor else None,
            attempt_id=_text(attempt_id) if attempt_id else None,
            attempts=int(attempts) if attempts else 0,
        )

    async def read_after(self, account: str, cursor: str | None, count: int) -> list[Event]:
        start = f"({cursor}" if cursor else "-"
        rows = await self.redis.xrange(keys.events(account), min=start, max="+", count=count)
        out = []
        for event_id, fields in rows or []:
            raw = (fields or {}).get(b"e") or (fields or {}).get("e")
            try:
                entry = json.loads(raw) if raw is not None else {}
            except ValueError:
                entry = {}
            out.append(Event(_text(event_id), entry if isinstance(entry, dict) else {}))
        return out

    async def advance(
        self, account: str, token: str, event_id: str, handled: int, outcome: str | None
    ) -> None:
        """Move the cursor to ``event_id`` (``handled`` events done) and count ``outcome``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            await stage_script(
                pipe,
                self._advance,
                [keys.webhook_state(account), keys.webhook_lock(account)],
                [token, event_id, handled],
            )
            if outcome is not None:
                pipe.hincrby(keys.WEBHOOK_COUNTERS, outcome, handled)
            pipe.zrem(keys.WEBHOOK_RETRY, account)
            moved, *_ = await pipe.execute()
        if int(moved) == 0:
            raise LockLost(account)

    async def record_failure(
        self, account: str, token: str, event_id: str, attempt: int, error: str
    ) -> None:
        moved = await self._failed(
            keys=[keys.webhook_state(account), keys.webhook_lock(account)],
            args=[token, event_id, attempt, error[:1000]],
        )
        if int(moved) == 0:
            raise LockLost(account)

    async def drained(self, account: str, token: str) -> bool:
        result = int(
            await self._drained(
                keys=[
                    keys.events(account),
                    keys.webhook_state(account),
                    keys.webhook_lock(account),
                ],
                args=[token],
            )
        )
        if result < 0:
            raise LockLost(account)
        return result == 1

    async def count(self, field: str, n: int = 1) -> None:
        await self.redis.hincrby(keys.WEBHOOK_COUNTERS, field, n)

    # --- recovery -------------------------------------------------------------------------------
    async def behind(self, accounts: list[str]) -> list[str]:
        """Those of ``accounts`` whose stream holds events after their cursor."""
        if not accounts:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.xrevrange(keys.events(account), "+", "-", count=1)
                pipe.hget(keys.webhook_state(account), "cursor")
            replies = await pipe.execute()
        out = []
        for i, account in enumerate(accounts):
            last, cursor = replies[2 * i], replies[2 * i + 1]
            if not last:
                continue
            if cursor is None or parse_id(_text(last[0][0])) > parse_id(_text(cursor)):
                out.append(account)
        return out

    # --- pause and counters ---------------------------------------------------------------------
    async def paused(self, queue: str = NOTIFY_QUEUE) -> bool:
        return bool(await self.redis.exists(keys.queue_paused(queue)))

    async def set_paused(self, paused: bool, queue: str = NOTIFY_QUEUE) -> bool:
        if paused:
            await self.redis.set(keys.queue_paused(queue), "1")
        else:
            await self.redis.delete(keys.queue_paused(queue))
            await self.redis.publish(keys.WEBHOOK_WAKE, "")
        return paused

    async def stats(self) -> dict[str, Any]:
        """EmailEngine's ``GET /v1/settings/queue/notify`` body, plus completed/failed totals.

        ``waiting``: undelivered events of scheduled accounts, minus the ones counted as
        ``delayed`` (the head events of accounts in retry backoff); ``active``: accounts being
        delivered right now (their lock is held).
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.queue_paused(NOTIFY_QUEUE))
            pipe.hgetall(keys.WEBHOOK_COUNTERS)
            pipe.zcard(keys.WEBHOOK_RETRY)
            pipe.zrange(keys.WEBHOOK_PENDING, 0, STATS_MAX_ACCOUNTS - 1)
            paused, counters, delayed, accounts = await pipe.execute()
        waiting = active = 0
        if accounts:
            async with self.redis.pipeline(transaction=False) as pipe:
                for raw in accounts:
                    account = _text(raw)
                    pipe.hget(keys.webhook_state(account), "waiting")
                    pipe.exists(keys.webhook_lock(account))
                replies = await pipe.execute()
            waiting = sum(max(0, int(w)) for w in replies[0::2] if w is not None)
            active = sum(int(bool(x)) for x in replies[1::2])
        totals = {_text(k): int(v) for k, v in counters.items()}
        delayed = int(delayed)
        return {
            "queue": NOTIFY_QUEUE,
            "jobs": {
                "active": active,
                "delayed": delayed,
                "paused": 0,
                "waiting": max(0, waiting - delayed),
                "completed": totals.get("completed", 0),
                "failed": totals.get("failed", 0),
            },
            "paused": bool(paused),
        }
