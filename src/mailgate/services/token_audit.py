"""The access-token audit log (setting ``tokenAuditLog``, ``GET /v1/tokens/{token}/log``).

When the setting is on, every authenticated request records one entry for the token it used:
time, client ip, method, route template, account, the permission action and group the route
needs, and whether it was ``allowed`` or ``denied`` (with the reason). Entries are JSON in a
per-token list, newest first, capped at ``MAX_ENTRIES_PER_TOKEN`` and kept ``ENTRY_TTL`` after
the last request. The setting is read at most every ``SETTING_CACHE_SECONDS`` per process.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from mailgate.services.settings import SettingsService
from mailgate.store import keys
from mailgate.store.events import iso_now

SETTING = "tokenAuditLog"
MAX_ENTRIES_PER_TOKEN = 1000
ENTRY_TTL = 30 * 24 * 3600  # seconds an idle token's log is kept
SETTING_CACHE_SECONDS = 5.0

# the permission group of a route, by the first path segment after /v1
_GROUPS = {
    "account": "account",
    "accounts": "account",
    "message": "message",
    "messages": "message",
    "mailbox": "mailbox",
    "mailboxes": "mailbox",
    "submit": "submit",
    "outbox": "submit",
    "tokens": "tokens",
    "token": "tokens",
    "settings": "settings",
    "webhookRoutes": "webhooks",
    "templates": "templates",
    "gateways": "gateways",
    "gateway": "gateways",
    "oauth2": "oauth2",
    "blocklist": "blocklists",
    "blocklists": "blocklists",
    "logs": "logs",
    "stats": "stats",
    "license": "admin",
}
_ACTIONS = {"GET": "read", "HEAD": "read", "POST": "write", "PUT": "write", "PATCH": "write"}


def permission_of(method: str, route: str) -> tuple[str, str]:
    """``(action, group)`` a request needs: read/write/delete by method, group by route."""
    action = _ACTIONS.get(method.upper(), "delete")
    parts = [p for p in route.split("/") if p and p != "v1"]
    group = "admin"
    for part in parts:
        if part.startswith("{"):
            continue
        group = _GROUPS.get(part, group)
        if part in ("message", "messages", "mailbox", "mailboxes", "submit", "outbox"):
            break
    return action, group


class TokenAudit:
    def __init__(self, redis: Redis, settings: SettingsService) -> None:
        self.redis = redis
        self.settings = settings
        self._enabled = False
        self._checked = 0.0

    async def enabled(self) -> bool:
        now = time.monotonic()
        if now - self._checked >= SETTING_CACHE_SECONDS:
            self._enabled = bool(await self.settings.get(SETTING))
            self._checked = now
        return self._enabled

    async def record(
        self,
        token_id: str,
        *,
        method: str,
        route: str,
        ip: str | None,
        account: str | None,
        denied_reason: str | None = None,
    ) -> None:
        """Add one entry for ``token_id`` when the audit log is on."""
        if not await self.enabled():
            return
        action, group = permission_of(method, route)
        entry = {
            "time": iso_now(),
            "ip": ip,
            "method": method.lower(),
            "path": route,
            "action": action,
            "group": group,
            "account": account,
            "status": "denied" if denied_reason else "allowed",
            "reason": denied_reason,
        }
        key = keys.token_audit(token_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, json.dumps(entry, separators=(",", ":")))
            pipe.ltrim(key, 0, MAX_ENTRIES_PER_TOKEN - 1)
            pipe.expire(key, ENTRY_TTL)
            await pipe.execute()

    async def entries(self, token_id: str, page: int, page_size: int) -> dict[str, Any]:
        """One page of a token's entries, newest first."""
        key = keys.token_audit(token_id)
        total = int(await self.redis.llen(key))
        start = page * page_size
        rows = await self.redis.lrange(key, start, start + page_size - 1)
        return {
            "token": token_id,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // page_size)),
            "entries": [json.loads(r) for r in rows],
        }

    async def forget(self, token_id: str) -> None:
        await self.redis.delete(keys.token_audit(token_id))
