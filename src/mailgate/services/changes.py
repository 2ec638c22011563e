"""``GET /v1/changes``: a Server-Sent Events stream of every account's events, live.

Events are appended to per-account Redis streams (``keys.events``) and each append is signalled
on the pub/sub channel ``keys.WEBHOOK_WAKE`` with the account id as the message. A stream
subscribes to that channel first, then takes the Redis server time as its starting point, so no
event appended after the subscription is missed and none from before it is replayed. On a signal
it XREADs the account's log after the last id it sent (``READ_BATCH`` at a time).

Each SSE message is ``id: <event uuid>`` and ``data: <webhook envelope JSON>`` (EmailEngine's
``{serviceUrl, account, date, path, specialUse, event, data}``), so an ``EventSource``'s
``onmessage`` receives every event. A comment line goes out every ``KEEPALIVE_SECONDS`` of
silence. Memory per connection is bounded: the accounts with unread signals form a set (at most
one entry per account), at most ``MAX_SIGNALS_PER_ROUND`` signals are taken per round and at most
``READ_BATCH`` events per account per round; a slow client slows its own reads (the generator
only reads when the previous message was sent), and Redis caps its pub/sub buffer. The client's
disconnect cancels the generator, which unsubscribes. ``MAX_STREAMS`` bounds the open streams
of one process.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from mailgate.errors import Unavailable
from mailgate.services.settings import SettingsService
from mailgate.services.webhooks.payload import body, event_uuid
from mailgate.store import keys
from mailgate.store.redis import text

MAX_STREAMS = 200  # open change streams per process
KEEPALIVE_SECONDS = 15.0  # a comment line after this much silence (proxies close idle streams)
READ_BATCH = 100  # events read from one account's log per XREAD
MAX_SIGNALS_PER_ROUND = 1000  # pub/sub signals taken before the pending accounts are read
RETRY_MS = 3000  # the reconnect delay suggested to EventSource clients


def sse_message(event_id: str, data: str) -> str:
    """One SSE message (``data`` must be a single line, as compact JSON is)."""
    return f"id: {event_id}\ndata: {data}\n\n"


class ChangeFeed:
    def __init__(self, redis: Redis, settings: SettingsService) -> None:
        self.redis = redis
        self.settings = settings
        self.active = 0

    def reserve(self) -> None:
        """Check, before a stream is answered, that fewer than ``MAX_STREAMS`` are open
        (Unavailable else). The stream counts itself while it runs."""
        if self.active >= MAX_STREAMS:
            raise Unavailable(
                f"Too many open change streams (at most {MAX_STREAMS} per process)",
                "TooManyStreams",
            )

    async def stream(self, account: str | None = None) -> AsyncIterator[str]:
        """SSE text of every event appended from now on (only ``account``'s when given).

        Call :meth:`reserve` first; the stream counts as open from its first step to its end.
        """
        pubsub = self.redis.pubsub()
        self.active += 1
        try:
            await pubsub.subscribe(keys.WEBHOOK_WAKE)
            seconds, micros = await self.redis.time()
            start = f"{int(seconds) * 1000 + int(micros) // 1000}-0"
            service_url = str(await self.settings.get("serviceUrl") or "")
            cursors: dict[str, str] = {}
            pending: set[str] = set()
            yield f"retry: {RETRY_MS}\n: mailgate change stream\n\n"
            while True:
                wait = 0.0 if pending else KEEPALIVE_SECONDS
                signalled = await self._signals(pubsub, wait, account)
                if not signalled and not pending:
                    yield ": keep-alive\n\n"
                    continue
                pending |= signalled
                for name in sorted(pending):
                    rows = await self._read(name, cursors.get(name, start))
                    if len(rows) < READ_BATCH:
                        pending.discard(name)
                    for event_id, entry in rows:
                        cursors[name] = event_id
                        payload = body(entry, service_url).decode("utf-8")
                        yield sse_message(event_uuid(name, event_id), payload)
        finally:
            self.active -= 1
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _signals(self, pubsub: Any, wait: float, account: str | None) -> set[str]:
        """Accounts signalled within ``wait`` seconds (then whatever else is already there)."""
        out: set[str] = set()
        timeout = wait
        for _ in range(MAX_SIGNALS_PER_ROUND):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
            if message is None:
                break
            timeout = 0.0
            if message.get("type") != "message":
                continue
            name = text(message["data"])
            if account is None or name == account:
                out.add(name)
        return out

    async def _read(self, account: str, after: str) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``READ_BATCH`` events of ``account`` after stream id ``after``."""
        reply: Any = await self.redis.xread({keys.events(account): after}, count=READ_BATCH)
        out: list[tuple[str, dict[str, Any]]] = []
        for _stream, rows in reply or []:
            for event_id, fields in rows:
                raw = fields.get(b"e") if fields else None
                if raw is None:
                    continue
                out.append((text(event_id), json.loads(raw)))
        return out
