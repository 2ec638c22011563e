"""The message half of :class:`~mailgate.backends.base.MailBackend`, shared by every backend.

Each backend keeps its message operations in an object of their own (``imap/messages.py``,
``gmail/messages.py``, ``graph/messages.py``) that answers :class:`MessageOps`; a backend class
inherits :class:`MessageMethods` and names that object in :meth:`MessageMethods.message_ops`,
instead of forwarding each method by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from mailgate.backends.base import Download, MessageChanges, PageRequest, ReadOptions


class MessageOps(Protocol):
    """What a backend's message object offers (listing and search share one method)."""

    async def list_messages(
        self, path: str, paging: PageRequest, search: Mapping[str, Any] | None = None
    ) -> dict[str, Any]: ...

    async def get_message(self, message: str, options: ReadOptions) -> dict[str, Any]: ...

    async def get_text(
        self, text: str, *, text_type: str, max_bytes: int | None, web_safe_html: bool
    ) -> dict[str, Any]: ...

    async def message_source(self, message: str) -> Download: ...

    async def download_attachment(self, attachment: str) -> Download: ...

    async def update_message(self, message: str, changes: MessageChanges) -> dict[str, Any]: ...

    async def move_message(self, message: str, target: str) -> dict[str, Any]: ...

    async def delete_message(self, message: str, *, force: bool) -> dict[str, Any]: ...

    async def append_message(
        self,
        path: str,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        internal_date: datetime | None = None,
    ) -> dict[str, Any]: ...

    async def update_messages(
        self, path: str, search: Mapping[str, Any], changes: MessageChanges
    ) -> dict[str, Any]: ...

    async def move_messages(
        self, path: str, search: Mapping[str, Any], target: str
    ) -> dict[str, Any]: ...

    async def delete_messages(
        self, path: str, search: Mapping[str, Any], *, force: bool
    ) -> dict[str, Any]: ...


class MessageMethods:
    """The message operations of a backend, answered by its :class:`MessageOps` object."""

    def message_ops(self) -> MessageOps:
        raise NotImplementedError

    async def list_messages(self, path: str, paging: PageRequest) -> dict[str, Any]:
        return await self.message_ops().list_messages(path, paging)

    async def search_messages(
        self, path: str, search: Mapping[str, Any], paging: PageRequest
    ) -> dict[str, Any]:
        return await self.message_ops().list_messages(path, paging, search)

    async def get_message(self, message: str, options: ReadOptions) -> dict[str, Any]:
        return await self.message_ops().get_message(message, options)

    async def get_text(
        self, text: str, *, text_type: str, max_bytes: int | None, web_safe_html: bool
    ) -> dict[str, Any]:
        return await self.message_ops().get_text(
            text, text_type=text_type, max_bytes=max_bytes, web_safe_html=web_safe_html
        )

    async def message_source(self, message: str) -> Download:
        return await self.message_ops().message_source(message)

    async def download_attachment(self, attachment: str) -> Download:
        return await self.message_ops().download_attachment(attachment)

    async def update_message(self, message: str, changes: MessageChanges) -> dict[str, Any]:
        return await self.message_ops().update_message(message, changes)

    async def move_message(self, message: str, target: str) -> dict[str, Any]:
        return await self.message_ops().move_message(message, target)

    async def delete_message(self, message: str, *, force: bool) -> dict[str, Any]:
        return await self.message_ops().delete_message(message, force=force)

    async def append_message(
        self,
        path: str,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        internal_date: datetime | None = None,
    ) -> dict[str, Any]:
        return await self.message_ops().append_message(
            path, raw, flags=flags, internal_date=internal_date
        )

    async def update_messages(
        self, path: str, search: Mapping[str, Any], changes: MessageChanges
    ) -> dict[str, Any]:
        return await self.message_ops().update_messages(path, search, changes)

    async def move_messages(
        self, path: str, search: Mapping[str, Any], target: str
    ) -> dict[str, Any]:
        return await self.message_ops().move_messages(path, search, target)

    async def delete_messages(
        self, path: str, search: Mapping[str, Any], *, force: bool
    ) -> dict[str, Any]:
        return await self.message_ops().delete_messages(path, search, force=force)
