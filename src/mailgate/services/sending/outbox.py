"""The durable outbox on Redis: jobs, schedule, leases, idempotency (atomic Lua steps).

Keys (see :mod:`mailgate.store.keys`, all in the ``{mg}`` slot)::

    ob:raw:<id>   string  the message, stored once
    ob:job:<id>   hash    account, state, attempts, attemptsMade, lastError, progress, ...
    ob:due        zset    id -> due time (ms): queued, waiting for sendAt or for a retry
    ob:active     zset    id -> lease expiry (ms): claimed by a worker
    ob:all        zset    id -> creation time (ms): every unfinished job (the /v1/outbox list)
    idem:<acct>:<sha256(key)>  string  the first reply to a submit with that Idempotency-Key

Job states (:class:`JobState`)::

    queued ──claim──► processing ──commit (before DATA)──► sending ──250──► sent ──► (finished)
      ▲                  │  │                                 │                │
      │   4xx, network   │  └── 5xx / attempts used ──► (failed, reported)     │ post-send steps
      └──────────────────┘                                    │                │ (Sent copy,
                                                              ▼                │  flags, event)
                                   lease expired while sending: uncertain ──► (reported, never
                                                                               re-sent)

A job moves between ``due`` and ``active`` only inside a script, so it is never in both and never
lost. Every write a worker makes checks its lease token; a job whose lease expired belongs to the
reaper (:meth:`Outbox.reap`), which puts it back in ``due`` — as ``uncertain`` when it was
``sending`` (the server may have the message; it is reported, not sent again) and unchanged when
it was ``sent`` (only the post-send steps run again).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from mailgate.errors import BadRequest, Conflict, NotFound
from mailgate.store import keys
from mailgate.store.redis import stage_script, str_map, text

IDEMPOTENCY_TTL = 24 * 3600  # seconds a submit reply is remembered under its Idempotency-Key
MAX_IDEMPOTENCY_KEY = 1024  # characters of an Idempotency-Key header
LEASE_MS = 15_000  # a claimed job belongs to its worker this long unless renewed (every 5 s)
MAX_PAGE_SIZE = 1000


class JobState(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SENDING = "sending"
    SENT = "sent"
    UNCERTAIN = "uncertain"


class LeaseLost(Exception):
    """The job's lease is no longer ours (expired and reaped, or the job was cancelled)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_ms(ms: int | float | None) -> str | None:
    if ms is None:
        return None
    secs = float(ms) / 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int(ms) % 1000:03d}Z"


def idempotency_hash(key: str) -> str:
    """The stored form of an Idempotency-Key (validated; hashed so any characters are safe)."""
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
            "InvalidIdempotencyKey",
        )
    return hashlib.sha256(key.encode()).hexdigest()


def replayed(stored: str | bytes, key: str) -> dict[str, Any]:
    """The first reply, marked as a replay (``idempotency.status: HIT``)."""
    reply: dict[str, Any] = json.loads(stored)
    reply["idempotency"] = {"key": key, "status": "HIT"}
    return reply


# KEYS: job, raw, due, all, [idem]   ARGV: id, raw, due_ms, created_ms, ttl, reply, fields...
_ENQUEUE = """
if #KEYS == 5 then
  local prev = redis.call('GET', KEYS[5])
  if prev then return {0, prev} end
end
redis.call('SET', KEYS[2], ARGV[2])
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
if #KEYS == 5 then redis.call('SET', KEYS[5], ARGV[6], 'EX', ARGV[5]) end
return {1}
"""

# KEYS: due, active, job   ARGV: id, now, lease_until, token
_CLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], 'lease', ARGV[4])
if redis.call('HGET', KEYS[3], 'state') == 'queued' then
  redis.call('HSET', KEYS[3], 'state', 'processing')
end
return 1
"""

# KEYS: active, job   ARGV: id, lease_until, token
_RENEW = """
if redis.call('HGET', KEYS[2], 'lease') ~= ARGV[3] then return 0 end
return redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[2], ARGV[1]) + 1
"""

# KEYS: job   ARGV: token ('' = any holder, the job must still exist), field, value, ...
_MARK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
return 1
"""

# KEYS: job, active, due   ARGV: token, id, due_ms, field, value, ...
_RESCHEDULE = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
if #ARGV > 3 then
  local fields = {}
  for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
end
redis.call('HDEL', KEYS[1], 'lease')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
"""

# KEYS: job, raw, active, all, due   ARGV: token, id
_FINISH = """
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
return 1
"""

# KEYS: active, due, job   ARGV: id, now
_REAP = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 0 then return 'gone' end
local state = redis.call('HGET', KEYS[3], 'state')
if state == 'sending' then
  redis.call('HSET', KEYS[3], 'state', 'uncertain')
  state = 'uncertain'
elseif state == 'processing' then
  redis.call('HSET', KEYS[3], 'state', 'queued')
end
redis.call('HDEL', KEYS[3], 'lease')
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return state
"""

# KEYS: job, active, due   ARGV: token, id, now
_RELEASE = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'sending' then
  redis.call('HSET', KEYS[1], 'state', 'uncertain')
elseif state == 'processing' then
  redis.call('HSET', KEYS[1], 'state', 'queued')
end
redis.call('HDEL', KEYS[1], 'lease')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
"""

# KEYS: job, raw, due, active, all   ARGV: id
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'sending' or state == 'sent' or state == 'uncertain' then return state end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 'deleted'
"""


@dataclass
class Job:
    """One outbox job as read from its hash (values are strings; JSON fields decoded)."""

    queue_id: str
    fields: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    def json(self, name: str) -> Any:
        value = self.fields.get(name)
        return json.loads(value) if value else None

    def int(self, name: str, default: int = 0) -> int:
        value = self.fields.get(name)
        return int(value) if value else default

    @property
    def state(self) -> JobState:
        try:
            return JobState(self.fields.get("state", "queued"))
        except ValueError:
            return JobState.QUEUED

    @property
    def account(self) -> str:
        return self.fields.get("account", "")


def _flat(fields: Mapping[str, object]) -> list[str]:
    out: list[str] = []
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            rendered = "1" if value else "0"
        elif isinstance(value, str | int | float):
            rendered = str(value)
        else:
            rendered = json.dumps(value, separators=(",", ":"))
        out += [name, rendered]
    return out


class Outbox:
    """Queue operations; every multi-key step is one script."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._mark = redis.register_script(_MARK)
        self._reschedule = redis.register_script(_RESCHEDULE)
        self._finish = redis.register_script(_FINISH)
        self._reap = redis.register_script(_REAP)
        self._cancel = redis.register_script(_CANCEL)
        self._release = redis.register_script(_RELEASE)

    # -- submit side ------------------------------------------------------------------------

    async def enqueue(
        self,
        queue_id: str,
        raw: bytes,
        fields: Mapping[str, object],
        *,
        due_ms: int,
        reply: dict[str, Any],
        account: str,
        idempotency_key: str | None = None,
    ) -> dict[str, Any] | None:
        """Store the message and its job; None when stored, else the first reply stored under
        the same Idempotency-Key (nothing new is queued then)."""
        script_keys = [
            keys.outbox_job(queue_id),
            keys.outbox_raw(queue_id),
            keys.OUTBOX_DUE,
            keys.OUTBOX_ALL,
        ]
        if idempotency_key is not None:
            script_keys.append(keys.idempotency(account, idempotency_hash(idempotency_key)))
        result = await self._enqueue(
            keys=script_keys,
            args=[
                queue_id,
                raw,
                due_ms,
                now_ms(),
                IDEMPOTENCY_TTL,
                json.dumps(reply, separators=(",", ":")),
                *_flat(fields),
            ],
        )
        if int(result[0]) == 0:
            return replayed(result[1], idempotency_key or "")
        await self.redis.publish(keys.OUTBOX_WAKE, queue_id)
        return None

    async def remembered(self, account: str, idempotency_key: str) -> dict[str, Any] | None:
        """The reply stored under an Idempotency-Key (a replay), or None."""
        stored = await self.redis.get(keys.idempotency(account, idempotency_hash(idempotency_key)))
        return replayed(stored, idempotency_key) if stored is not None else None

    # -- worker side ------------------------------------------------------------------------

    async def next_due(self) -> int | None:
        """Due time (ms) of the earliest job, or None when nothing waits."""
        rows = await self.redis.zrange(keys.OUTBOX_DUE, 0, 0, withscores=True)
        return int(rows[0][1]) if rows else None

    async def claim(self, token: str, limit: int, lease_ms: int = LEASE_MS) -> list[str]:
        """Claim up to ``limit`` due jobs for the worker holding ``token``."""
        now = now_ms()
        ids = await self.redis.zrangebyscore(keys.OUTBOX_DUE, "-inf", now, start=0, num=limit)
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for raw_id in ids:
                qid = text(raw_id)
                await stage_script(
                    pipe,
                    self._claim,
                    [keys.OUTBOX_DUE, keys.OUTBOX_ACTIVE, keys.outbox_job(qid)],
                    [qid, now, now + lease_ms, token],
                )
            results = await pipe.execute()
        return [text(i) for i, ok in zip(ids, results, strict=True) if int(ok) == 1]

    async def renew(self, token: str, queue_ids: list[str], lease_ms: int = LEASE_MS) -> set[str]:
        """Extend the leases; returns the ids whose lease is no longer ours."""
        if not queue_ids:
            return set()
        until = now_ms() + lease_ms
        async with self.redis.pipeline(transaction=False) as pipe:
            for qid in queue_ids:
                await stage_script(
                    pipe,
                    self._renew,
                    [keys.OUTBOX_ACTIVE, keys.outbox_job(qid)],
                    [qid, until, token],
                )
            results = await pipe.execute()
        return {q for q, ok in zip(queue_ids, results, strict=True) if int(ok) == 0}

    async def load(self, queue_id: str) -> tuple[Job, bytes] | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.outbox_job(queue_id))
            pipe.get(keys.outbox_raw(queue_id))
            fields, raw = await pipe.execute()
        if not fields:
            return None
        return Job(queue_id, str_map(fields)), (raw or b"")

    async def mark(self, token: str, queue_id: str, fields: Mapping[str, object]) -> None:
        """Write job fields while holding the lease (``token=""``: as long as the job exists);
        LeaseLost otherwise."""
        ok = await self._mark(keys=[keys.outbox_job(queue_id)], args=[token, *_flat(fields)])
        if int(ok) != 1:
            raise LeaseLost(queue_id)

    async def reschedule(
        self, token: str, queue_id: str, due_ms: int, fields: Mapping[str, object] | None = None
    ) -> bool:
        """Back to ``due`` at ``due_ms`` (a retry, or a release at shutdown)."""
        ok = await self._reschedule(
            keys=[keys.outbox_job(queue_id), keys.OUTBOX_ACTIVE, keys.OUTBOX_DUE],
            args=[token, queue_id, due_ms, *_flat(fields or {})],
        )
        return int(ok) == 1

    async def release(self, token: str, queue_ids: list[str]) -> None:
        """Give held jobs back to ``due`` now (graceful stop); a job caught ``sending`` becomes
        ``uncertain``, a ``sent`` one keeps its state (only its post-send steps run again)."""
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            for qid in queue_ids:
                await stage_script(
                    pipe,
                    self._release,
                    [keys.outbox_job(qid), keys.OUTBOX_ACTIVE, keys.OUTBOX_DUE],
                    [token, qid, now],
                )
            await pipe.execute()

    async def finish(self, token: str, queue_id: str) -> bool:
        """Remove a job for good (delivered and post-processed, failed, or uncertain)."""
        ok = await self._finish(
            keys=[
                keys.outbox_job(queue_id),
                keys.outbox_raw(queue_id),
                keys.OUTBOX_ACTIVE,
                keys.OUTBOX_ALL,
                keys.OUTBOX_DUE,
            ],
            args=[token, queue_id],
        )
        return int(ok) == 1

    async def reap(self, limit: int = 100) -> dict[str, str]:
        """Put jobs with an expired lease back in ``due``; returns id -> state it had."""
        now = now_ms()
        ids = await self.redis.zrangebyscore(keys.OUTBOX_ACTIVE, "-inf", now, start=0, num=limit)
        out: dict[str, str] = {}
        for raw_id in ids:
            qid = text(raw_id)
            state = await self._reap(
                keys=[keys.OUTBOX_ACTIVE, keys.OUTBOX_DUE, keys.outbox_job(qid)], args=[qid, now]
            )
            if state is not None:
                out[qid] = text(state)
        return out

    # -- API side ---------------------------------------------------------------------------

    async def get(self, queue_id: str) -> Job | None:
        fields = await self.redis.hgetall(keys.outbox_job(queue_id))
        return Job(queue_id, str_map(fields)) if fields else None

    async def page(self, page: int, page_size: int) -> tuple[int, list[Job]]:
        total = int(await self.redis.zcard(keys.OUTBOX_ALL))
        start = page * page_size
        ids = [
            text(i) for i in await self.redis.zrange(keys.OUTBOX_ALL, start, start + page_size - 1)
        ]
        jobs: list[Job] = []
        if ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                for qid in ids:
                    pipe.hgetall(keys.outbox_job(qid))
                rows = await pipe.execute()
            jobs = [Job(q, str_map(r)) for q, r in zip(ids, rows, strict=True) if r]
        return total, jobs

    async def cancel(self, queue_id: str) -> bool:
        result = await self._cancel(
            keys=[
                keys.outbox_job(queue_id),
                keys.outbox_raw(queue_id),
                keys.OUTBOX_DUE,
                keys.OUTBOX_ACTIVE,
                keys.OUTBOX_ALL,
            ],
            args=[queue_id],
        )
        if result is None:
            raise NotFound("Requested queue entry was not found", "NotFound")
        state = text(result)
        if state != "deleted":
            raise Conflict(
                f"The message can not be removed any more (it is {state})", "AlreadySending"
            )
        return True

    async def counts(self) -> dict[str, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.OUTBOX_DUE)
            pipe.zcount(keys.OUTBOX_DUE, "-inf", now_ms())
            pipe.zcard(keys.OUTBOX_ACTIVE)
            due, waiting, active = await pipe.execute()
        return {"waiting": int(waiting), "delayed": int(due) - int(waiting), "active": int(active)}


def job_view(job: Job) -> dict[str, Any]:
    """A job as ``GET /v1/outbox/{queueId}`` shows it."""
    envelope = job.json("envelope") or {}
    created = job.int("created") or None
    scheduled = job.int("scheduled") or created
    next_attempt = job.int("nextAttempt") or None
    progress = job.json("progress") or {"status": "queued"}
    state = job.state
    if state is JobState.PROCESSING:
        progress = {**progress, "status": progress.get("status", "processing")}
    out: dict[str, Any] = {
        "queueId": job.queue_id,
        "account": job.account,
        "source": job.get("source", "api"),
        "messageId": job.get("messageId") or None,
        "envelope": envelope,
        "subject": job.get("subject") or None,
        "gateway": job.get("gateway") or None,
        "proxy": None,
        "localAddress": None,
        "idempotencyKey": job.get("idempotencyKey") or None,
        "created": iso_ms(created),
        "scheduled": iso_ms(scheduled),
        "nextAttempt": iso_ms(next_attempt) if next_attempt else False,
        "attemptsMade": job.int("attemptsMade"),
        "attempts": job.int("attempts"),
        "progress": progress,
        "state": state.value,  # mailgate: the job's state in the outbox state machine
    }
    last_error = job.json("lastError")
    if last_error:
        out["lastError"] = last_error
    return out


def pages(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size)) if page_size else 1
