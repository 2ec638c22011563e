"""The mailbox side of sending: read a referenced message or draft, flag it, copy to Sent.

Everything goes through the account's :class:`~mailgate.backends.base.MailBackend`, so replies,
forwards and drafts work the same on IMAP, Gmail API and Microsoft Graph accounts; message ids
are the backend's own (for IMAP they carry the mailbox's UIDVALIDITY, so an id never names
another message after a mailbox reset).
"""

from __future__ import annotations

from mailgate.backends.base import Download, FlagChanges, MailBackend, MessageChanges
from mailgate.backends.registry import BackendCache
from mailgate.domain.account import AccountRecord
from mailgate.errors import BadRequest
from mailgate.store.mailboxes import MailboxRegistry

MAX_REFERENCED_BYTES = 64 * 1024 * 1024  # largest message read back to reply to or forward
MAX_HEADER_BYTES = 256 * 1024  # header block read to thread a reply


class MailStore:
    def __init__(self, backends: BackendCache, registry: MailboxRegistry) -> None:
        self.backends = backends
        self.registry = registry

    async def backend(self, record: AccountRecord) -> MailBackend:
        return await self.backends.get(record)

    @staticmethod
    async def _read(download: Download, limit: int, *, until_headers: bool = False) -> bytes:
        buf = bytearray()
        try:
            async for chunk in download.chunks:
                buf += chunk
                if until_headers and (b"\r\n\r\n" in buf or b"\n\n" in buf):
                    break
                if len(buf) > limit:
                    if until_headers:
                        break
                    raise BadRequest(
                        f"The referenced message is larger than {limit} bytes", "MessageTooLarge"
                    )
        finally:
            close = getattr(download.chunks, "aclose", None)
            if close is not None:
                await close()
        return bytes(buf)

    async def headers(self, record: AccountRecord, message: str) -> bytes:
        """The header block of a stored message (for threading and addressing a reply)."""
        backend = await self.backend(record)
        data = await self._read(
            await backend.message_source(message), MAX_HEADER_BYTES, until_headers=True
        )
        for sep in (b"\r\n\r\n", b"\n\n"):
            if sep in data:
                return data.split(sep, 1)[0] + sep
        return data

    async def raw(self, record: AccountRecord, message: str) -> bytes:
        """The full RFC 822 source of a stored message."""
        backend = await self.backend(record)
        return await self._read(await backend.message_source(message), MAX_REFERENCED_BYTES)

    async def attachment(
        self, record: AccountRecord, attachment: str
    ) -> tuple[bytes, str | None, str | None]:
        """A stored attachment's decoded bytes, content type and filename (for forwards)."""
        backend = await self.backend(record)
        download = await backend.download_attachment(attachment)
        content = await self._read(download, MAX_REFERENCED_BYTES)
        return content, download.content_type, download.filename

    async def add_flag(self, record: AccountRecord, message: str, flag: str) -> None:
        backend = await self.backend(record)
        await backend.update_message(message, MessageChanges(flags=FlagChanges(add=(flag,))))

    async def delete(self, record: AccountRecord, message: str) -> None:
        """Remove a stored message (a sent draft) for good."""
        backend = await self.backend(record)
        await backend.delete_message(message, force=True)

    async def append_sent(self, record: AccountRecord, path: str | None, raw: bytes) -> str:
        """Append ``raw`` to ``path`` (or the special-use Sent folder) as seen; returns the path."""
        backend = await self.backend(record)
        target = path or (record.imap.sent_mail_path if record.imap else None) or "\\Sent"
        target = await backend.resolve_path(target)
        await backend.append_message(target, raw, flags=["\\Seen"])
        return target
