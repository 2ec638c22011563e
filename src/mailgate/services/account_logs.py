"""Per-account log lines (``GET /v1/logs/{account}``), kept when logging is on for the account.

Logging is on for an account when its record says ``logs: true`` or the ``logs`` setting says
``all: true``. Lines are JSON objects (``time``, ``level``, ``msg`` and the line's fields), kept
newest first in a capped Redis list per account (a ring buffer of the ``logs.maxLogLines``
setting, at most ``MAX_LOG_LINES``). The account runner writes its state changes and connection
failures here (:class:`mailgate.runtime.runner.AccountJournal`); the API returns the lines oldest
first as ``text/plain``, one JSON object a line, like EmailEngine's log download.

Whether logging is on is read at most every ``ENABLED_CACHE_SECONDS`` per account and process.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from mailgate.services.settings import SettingsService
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.events import iso_now
from mailgate.store.redis import text

DEFAULT_MAX_LOG_LINES = 10_000
MAX_LOG_LINES = 1_000_000  # the setting's own bound
MAX_LINE_CHARS = 8192  # a longer line is cut
ENABLED_CACHE_SECONDS = 5.0
LOG_TTL = 30 * 24 * 3600  # seconds the lines of an account that stopped logging are kept


class AccountLogs:
    def __init__(self, redis: Redis, accounts: AccountStore, settings: SettingsService) -> None:
        self.redis = redis
        self.accounts = accounts
        self.settings = settings
        self._enabled: dict[str, tuple[float, int]] = {}  # account -> (checked at, max lines)

    async def _max_lines(self, account: str) -> int:
        """How many lines to keep for ``account``; 0 when logging is off for it."""
        now = time.monotonic()
        cached = self._enabled.get(account)
        if cached is not None and now - cached[0] < ENABLED_CACHE_SECONDS:
            return cached[1]
        setting = await self.settings.get("logs") or {}
        record = await self.accounts.get(account)
        max_lines = 0
        if record is not None and (record.logs or setting.get("all")):
            configured = setting.get("maxLogLines", DEFAULT_MAX_LOG_LINES)
            max_lines = max(0, min(int(configured), MAX_LOG_LINES))
        if len(self._enabled) > 10_000:  # a bounded cache: forget everything now and then
            self._enabled.clear()
        self._enabled[account] = (now, max_lines)
        return max_lines

    async def write(self, account: str, level: str, msg: str, **fields: Any) -> None:
        """Keep one line for ``account`` when logging is on for it."""
        max_lines = await self._max_lines(account)
        if max_lines <= 0:
            return
        entry = {"time": iso_now(), "level": level, "msg": msg, "account": account, **fields}
        line = json.dumps(entry, separators=(",", ":"), default=str)[:MAX_LINE_CHARS]
        key = keys.account_log(account)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, line)
            pipe.ltrim(key, 0, max_lines - 1)
            pipe.expire(key, LOG_TTL)
            await pipe.execute()

    async def lines(self, account: str) -> list[str]:
        """The account's kept lines, oldest first."""
        rows = await self.redis.lrange(keys.account_log(account), 0, -1)
        return [text(r) for r in reversed(rows)]
