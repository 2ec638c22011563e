"""Fenced, atomic commits of index changes, cursors and events for one account.

Everything one sync step changes — index chunks, the mailbox cursor and the events it produced —
is written in one MULTI/EXEC, guarded by WATCH on the account's fencing token: a process that lost
its lease (paused, partitioned) cannot overwrite the new owner's state, and a crash never leaves
an index without its events or events without their index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from mailgate.errors import MailgateError
from mailgate.store import keys
from mailgate.store.events import event_fields, signal_appended, stage_append
from mailgate.store.index import MailboxCursor, MailboxIndex, mark_clean, stage_index_writes
from mailgate.store.redis import mapping


class LeaseLost(MailgateError):
    """Another process holds the account now: stop writing."""


@dataclass
class PendingEvent:
    event: str
    data: dict[str, Any]
    path: str | None = None
    special_use: str | None = None


@dataclass
class Batch:
    """What one commit writes."""

    index: MailboxIndex | None = None
    cursor: tuple[int, MailboxCursor] | None = None
    events: list[PendingEvent] = field(default_factory=list)
    extra: list[Callable[[Any], None]] = field(default_factory=list)

    def emit(self, event: str, data: dict[str, Any], path: str | None = None,
             special_use: str | None = None) -> None:  # fmt: skip
        self.events.append(PendingEvent(event, data, path, special_use))


class Committer:
    def __init__(self, redis: Redis, account: str, fence: int | None) -> None:
        self.redis = redis
        self.account = account
        self.fence = fence

    async def commit(self, batch: Batch) -> None:
        if batch.index is None and batch.cursor is None and not batch.events and not batch.extra:
            return
        fence_key = keys.fence(self.account)
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(fence_key)
                if self.fence is not None:
                    current = await pipe.get(fence_key)
                    if current is None or int(current) != self.fence:
                        raise LeaseLost(f"lease of {self.account} moved (fence {current!r})")
                pipe.multi()  # type: ignore[no-untyped-call]
                if batch.index is not None:
                    stage_index_writes(pipe, batch.index)
                if batch.cursor is not None:
                    mbno, cursor = batch.cursor
                    pipe.hset(
                        keys.mailbox_state(self.account, mbno), mapping=mapping(cursor.to_redis())
                    )
                for stage in batch.extra:
                    stage(pipe)
                for ev in batch.events:
                    fields = event_fields(
                        self.account, ev.event, ev.data, path=ev.path, special_use=ev.special_use
                    )
                    stage_append(pipe, self.account, fields)
                await pipe.execute()
            except WatchError as exc:
                raise LeaseLost(f"lease of {self.account} moved during a commit") from exc
        if batch.index is not None:
            mark_clean(batch.index)
        if batch.events:
            await signal_appended(self.redis, self.account)
