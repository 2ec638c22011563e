"""API access tokens: only the SHA-256 of a token is stored, with its metadata.

Token checks are cached in the process for :data:`LOOKUP_CACHE_TTL` seconds (found tokens only:
a token issued anywhere works at once). A token deleted through this process stops working at
once; one deleted by another process within that many seconds.
"""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis

from mailgate.store import keys
from mailgate.store.crypto import hash_token, new_token
from mailgate.store.redis import text

SCOPES = ("*", "api", "metrics", "smtp", "imap-proxy")
LAST_USE_WRITE_INTERVAL = 60.0  # seconds between writes of a token's last use
LOOKUP_CACHE_TTL = 1.0  # seconds a found token is trusted without asking Redis again
LOOKUP_CACHE_SIZE = 4096  # most cached token checks per process (cleared when full)


class TokenRecord(msgspec.Struct, omit_defaults=True, rename="camel"):
    id: str
    scopes: list[str]
    created: str
    account: str | None = None
    description: str | None = None
    metadata: str | None = None
    ip: str | None = None
    remote_address: str | None = None
    restrictions: dict[str, object] | None = None
    permissions: dict[str, object] | None = None
    expires: str | None = None
    access: dict[str, str | None] | None = None

    def allows(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TokenRecord)


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"


class TokenStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._last_use_written: dict[str, float] = {}
        self._found: dict[str, tuple[float, TokenRecord]] = {}  # token id -> (until, record)

    async def issue(
        self,
        *,
        scopes: list[str],
        account: str | None = None,
        description: str | None = None,
        metadata: str | None = None,
        ip: str | None = None,
        remote_address: str | None = None,
        restrictions: dict[str, object] | None = None,
        permissions: dict[str, object] | None = None,
        expires: str | None = None,
    ) -> tuple[str, TokenRecord]:
        """A new token (returned once, never stored) and its stored record."""
        token = new_token()
        record = TokenRecord(
            id=hash_token(token),
            scopes=scopes,
            created=_iso_now(),
            account=account,
            description=description,
            metadata=metadata,
            ip=ip,
            remote_address=remote_address,
            restrictions=restrictions,
            permissions=permissions,
            expires=expires,
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.token(record.id), _encoder.encode(record))
            pipe.zadd(keys.TOKENS, {record.id: int(time.time() * 1000)})
            await pipe.execute()
        return token, record

    async def get(self, token_id: str) -> TokenRecord | None:
        raw = await self.redis.get(keys.token(token_id))
        return _decoder.decode(raw) if raw else None

    async def lookup(self, token: str) -> TokenRecord | None:
        """The record of a presented token, or None (cached, see the module docstring)."""
        token_id = hash_token(token)
        now = time.monotonic()
        cached = self._found.get(token_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self.get(token_id)
        if record is None:
            self._found.pop(token_id, None)
            return None
        if len(self._found) >= LOOKUP_CACHE_SIZE:
            self._found.clear()
        self._found[token_id] = (now + LOOKUP_CACHE_TTL, record)
        return record

    async def delete(self, token_or_id: str) -> bool:
        token_id = token_or_id if await self.get(token_or_id) else hash_token(token_or_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.token(token_id))
            pipe.zrem(keys.TOKENS, token_id)
            deleted, _ = await pipe.execute()
        self._found.pop(token_id, None)  # after the delete: a lookup meanwhile may have cached it
        return bool(deleted)

    async def list(self) -> list[TokenRecord]:
        ids = [text(i) for i in await self.redis.zrange(keys.TOKENS, 0, -1)]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for token_id in ids:
                pipe.get(keys.token(token_id))
            raws = await pipe.execute()
        return [_decoder.decode(raw) for raw in raws if raw]

    async def touch(self, record: TokenRecord, ip: str | None) -> None:
        """Record the last use, at most once a minute per token per process."""
        now = time.monotonic()
        if now - self._last_use_written.get(record.id, 0.0) < LAST_USE_WRITE_INTERVAL:
            return
        self._last_use_written[record.id] = now
        updated = msgspec.structs.replace(record, access={"time": _iso_now(), "ip": ip})
        await self.redis.set(keys.token(record.id), _encoder.encode(updated), xx=True)
