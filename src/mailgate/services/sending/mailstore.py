"""The IMAP side of sending: read a referenced message or draft, flag it, copy to Sent.

Every operation borrows a connection from the account's API pool (never the watcher's), selects
the mailbox it needs (a pooled connection may have another one selected) and checks UIDVALIDITY
against the message id, so a message id never names another message after a mailbox reset.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailgate.backends.imap.backend import ImapBackend
from mailgate.backends.registry import BackendCache
from mailgate.domain.account import AccountRecord
from mailgate.domain.ids import unpack_message_id
from mailgate.errors import BadRequest, CommandError, NotFound
from mailgate.store.mailboxes import MailboxRegistry

from .references import HEADER_FIELDS


@dataclass(frozen=True)
class Located:
    path: str
    uid: int
    uidvalidity: int


def _body(attrs: dict[str, object]) -> bytes | None:
    for key, value in attrs.items():
        if key.startswith("BODY[") and isinstance(value, bytes):
            return value
    return None


class MailStore:
    def __init__(self, backends: BackendCache, registry: MailboxRegistry) -> None:
        self.backends = backends
        self.registry = registry

    async def backend(self, record: AccountRecord) -> ImapBackend:
        backend = await self.backends.get(record)
        if not isinstance(backend, ImapBackend):
            raise BadRequest("This account does not support IMAP operations", "NoImapAccess")
        return backend

    async def locate(self, account: str, message: str) -> Located:
        mailbox_no, uid = unpack_message_id(message)
        found = await self.registry.lookup(account, mailbox_no)
        if found is None:
            raise NotFound("Requested message was not found", "MessageNotFound")
        path, uidvalidity = found
        return Located(path, uid, uidvalidity)

    async def _fetch(self, record: AccountRecord, message: str, item: str) -> bytes:
        where = await self.locate(record.account, message)
        backend = await self.backend(record)
        async with backend.pool.acquire() as client:
            try:
                box = await client.select(where.path, readonly=True)
            except CommandError as exc:
                raise NotFound("Requested message was not found", "MessageNotFound") from exc
            if box.uidvalidity is not None and box.uidvalidity != where.uidvalidity:
                raise NotFound("Requested message was not found", "MessageNotFound")
            result = await client.uid_fetch([where.uid], ["UID", item])
        for resp in result:
            if resp.uid == where.uid:
                body = _body(resp.attrs)
                if body is not None:
                    return body
        raise NotFound("Requested message was not found", "MessageNotFound")

    async def headers(self, record: AccountRecord, message: str) -> bytes:
        """The threading/addressing header fields of a stored message."""
        fields = " ".join(HEADER_FIELDS)
        return await self._fetch(record, message, f"BODY.PEEK[HEADER.FIELDS ({fields})]")

    async def raw(self, record: AccountRecord, message: str) -> bytes:
        """The full RFC 822 source of a stored message."""
        return await self._fetch(record, message, "BODY.PEEK[]")

    async def add_flag(self, record: AccountRecord, message: str, flag: str) -> None:
        where = await self.locate(record.account, message)
        backend = await self.backend(record)
        async with backend.pool.acquire() as client:
            box = await client.select(where.path)
            if box.uidvalidity is not None and box.uidvalidity != where.uidvalidity:
                raise NotFound("Requested message was not found", "MessageNotFound")
            await client.uid_store([where.uid], "+FLAGS", [flag])

    async def delete(self, record: AccountRecord, message: str) -> None:
        """Remove a stored message (a sent draft) for good."""
        where = await self.locate(record.account, message)
        backend = await self.backend(record)
        async with backend.pool.acquire() as client:
            box = await client.select(where.path)
            if box.uidvalidity is not None and box.uidvalidity != where.uidvalidity:
                raise NotFound("Requested message was not found", "MessageNotFound")
            await client.uid_store([where.uid], "+FLAGS", ["\\Deleted"])
            if client.has_capability("UIDPLUS"):
                await client.uid_expunge([where.uid])
            else:
                await client.expunge()

    async def append_sent(self, record: AccountRecord, path: str | None, raw: bytes) -> str:
        """Append ``raw`` to ``path`` (or the special-use Sent folder) as seen; returns the path."""
        backend = await self.backend(record)
        target = path or (record.imap.sent_mail_path if record.imap else None) or "\\Sent"
        target = await backend.resolve_path(target)
        async with backend.pool.acquire() as client:
            await client.append(target, raw, flags=["\\Seen"])
        return target
