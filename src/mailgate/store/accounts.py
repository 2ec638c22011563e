"""Account records and runtime state in Redis; secrets are encrypted before they are stored."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import msgspec
from redis.asyncio import Redis

from mailgate.domain.account import AccountRecord, Auth, RuntimeState
from mailgate.store import keys
from mailgate.store.crypto import SecretBox
from mailgate.store.redis import data, str_map, text

OAUTH2_SECRET_FIELDS = ("accessToken", "refreshToken")

_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(AccountRecord)
_state_decoder = msgspec.msgpack.Decoder(RuntimeState)

SecretFn = Callable[[str], str]

DELIVERY_GRACE = 7 * 24 * 3600  # seconds a deleted account's undelivered events are kept


def _map_auth(auth: Auth | None, fn: SecretFn) -> Auth | None:
    if auth is None:
        return None
    return msgspec.structs.replace(
        auth,
        pass_=fn(auth.pass_) if auth.pass_ is not None else None,
        access_token=fn(auth.access_token) if auth.access_token is not None else None,
    )


def map_secrets(record: AccountRecord, fn: SecretFn) -> AccountRecord:
    """A copy of ``record`` with ``fn`` applied to every secret field."""
    imap = record.imap
    if imap is not None:
        imap = msgspec.structs.replace(imap, auth=_map_auth(imap.auth, fn))
    smtp = record.smtp
    if smtp is not None:
        smtp = msgspec.structs.replace(smtp, auth=_map_auth(smtp.auth, fn))
    oauth2 = record.oauth2
    if oauth2 is not None:
        oauth2 = dict(oauth2)
        for field in OAUTH2_SECRET_FIELDS:
            value = oauth2.get(field)
            if isinstance(value, str):
                oauth2[field] = fn(value)
    return msgspec.structs.replace(record, imap=imap, smtp=smtp, oauth2=oauth2)


class AccountStore:
    def __init__(self, redis: Redis, box: SecretBox) -> None:
        self.redis = redis
        self.box = box
        self._encrypt: SecretFn = box.encrypt
        self._decrypt: SecretFn = box.decrypt

    async def save(self, record: AccountRecord) -> bool:
        """Store the record; True when the account is new."""
        sealed = map_secrets(record, self._encrypt)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.account(record.account), _encoder.encode(sealed))
            pipe.zadd(keys.ACCOUNTS, {record.account: int(time.time() * 1000)}, nx=True)
            _, added = await pipe.execute()
        return bool(added)

    async def get(self, account_id: str) -> AccountRecord | None:
        raw = await self.redis.get(keys.account(account_id))
        if raw is None:
            return None
        return map_secrets(_record_decoder.decode(data(raw)), self._decrypt)

    async def exists(self, account_id: str) -> bool:
        return bool(await self.redis.exists(keys.account(account_id)))

    async def sync_meta(self, account_id: str) -> dict[str, str]:
        """The indexer's progress facts for the account (see the sync engine)."""
        return str_map(await self.redis.hgetall(keys.sync_meta(account_id)))

    async def drop_index(self, account_id: str) -> int:
        """Delete the account's index and sync cursors (flush); returns the keys deleted.

        The fencing token is advanced in the same step, so a sync step still in flight in the
        account's runner cannot write the old index back.
        """
        keep = keys.kept_on_flush(account_id)
        doomed = [
            k
            async for k in self.redis.scan_iter(match=keys.account_pattern(account_id), count=500)
            if text(k) not in keep
        ]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(keys.fence(account_id))
            if doomed:
                pipe.delete(*doomed)
            await pipe.execute()
        return len(doomed)

    async def delete(self, account_id: str) -> bool:
        # the event log and its delivery state outlive the account until webhooks drained them
        # (``accountDeleted`` included); they expire on their own after DELIVERY_GRACE
        kept = {keys.events(account_id), keys.webhook_state(account_id)}
        doomed = {
            text(k)
            async for k in self.redis.scan_iter(match=keys.account_pattern(account_id), count=500)
        }
        doomed |= set(keys.account_keys(account_id))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.ACCOUNTS, account_id)
            pipe.delete(*(doomed - kept))
            for key in kept:
                pipe.expire(key, DELIVERY_GRACE)
            results = await pipe.execute()
        return bool(results[0])

    async def count(self) -> int:
        return int(await self.redis.zcard(keys.ACCOUNTS))

    async def ids(self, start: int = 0, stop: int = -1) -> list[str]:
        raw = await self.redis.zrange(keys.ACCOUNTS, start, stop)
        return [text(r) for r in raw]

    async def get_many(self, account_ids: Iterable[str]) -> list[AccountRecord | None]:
        ids = list(account_ids)
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                pipe.get(keys.account(account_id))
            raws = await pipe.execute()
        return [
            map_secrets(_record_decoder.decode(data(raw)), self._decrypt) if raw else None
            for raw in raws
        ]

    # --- runtime state ----------------------------------------------------------------------
    async def get_state(self, account_id: str) -> RuntimeState:
        raw = await self.redis.get(keys.account_state(account_id))
        return _state_decoder.decode(data(raw)) if raw else RuntimeState()

    async def get_states(self, account_ids: Iterable[str]) -> list[RuntimeState]:
        ids = list(account_ids)
        if not ids:
            return []
        raws = await self._mget_states(ids)
        return [_state_decoder.decode(data(raw)) if raw else RuntimeState() for raw in raws]

    async def _mget_states(self, ids: list[str]) -> list[bytes | None]:
        # keys live in different cluster slots: pipeline single GETs instead of MGET
        async with self.redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                pipe.get(keys.account_state(account_id))
            return list(await pipe.execute())

    async def set_state(self, account_id: str, state: RuntimeState) -> None:
        if not await self.exists(account_id):
            return  # deleted while its runner was still winding down
        await self.redis.set(keys.account_state(account_id), _encoder.encode(state))
