"""A small bounded pool of IMAP connections per account for API calls.

API operations never share the connection that watches for changes, so parallel API calls do not
queue behind IDLE or a sync. The pool is bounded (servers limit connections per user), and
connections that stayed unused for a while are logged out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from mailgate.backends.imap.client import ImapClient
from mailgate.errors import ConnectError

POOL_SIZE = 4  # connections per account per process for API calls
IDLE_CLOSE_AFTER = 60.0  # seconds an unused pooled connection stays open


class ImapPool:
    def __init__(
        self,
        opener: Callable[[], Awaitable[ImapClient]],
        *,
        size: int = POOL_SIZE,
        idle_close_after: float = IDLE_CLOSE_AFTER,
    ) -> None:
        self._opener = opener
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[float, ImapClient]] = []
        self._idle_close_after = idle_close_after
        self._open = 0
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[ImapClient]:
        if self._closed:
            raise ConnectError("the connection pool is closed")
        async with self._slots:
            client = await self._take()
            healthy = False
            try:
                yield client
                healthy = True
            finally:
                if healthy and not client.closed and not self._closed:
                    self._idle.append((time.monotonic(), client))
                else:
                    await self._discard(client)

    async def _take(self) -> ImapClient:
        await self.reap()
        while self._idle:
            _, client = self._idle.pop()
            if not client.closed:
                return client
            await self._discard(client)
        client = await self._opener()
        self._open += 1
        return client

    async def _discard(self, client: ImapClient) -> None:
        self._open -= 1
        await client.logout()

    async def reap(self) -> None:
        """Log out connections idle for longer than the limit."""
        deadline = time.monotonic() - self._idle_close_after
        stale = [c for t, c in self._idle if t < deadline]
        if not stale:
            return
        self._idle = [(t, c) for t, c in self._idle if t >= deadline]
        for client in stale:
            await self._discard(client)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._discard(c) for _, c in idle), return_exceptions=True)
