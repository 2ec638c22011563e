"""Message use cases: list, search, read, stream, flag, move, delete, upload, bulk changes.

Each use case finds the account's backend and calls one :class:`MailBackend` method; what differs
between providers stays in the backends. Inputs arrive validated by the models of
:mod:`mailgate.services.message_inputs`; replies are EmailEngine's JSON.
"""

from __future__ import annotations

from typing import Any

from mailgate.backends.base import (
    Download,
    FlagChanges,
    MailBackend,
    MessageChanges,
    PageRequest,
    ReadOptions,
)
from mailgate.backends.registry import BackendCache
from mailgate.errors import BadRequest
from mailgate.services.accounts import AccountService
from mailgate.services.message_inputs import (
    FlagOpsIn,
    MessagesDeleteIn,
    MessagesMoveIn,
    MessagesUpdateIn,
    MessageUpdateIn,
    MessageUploadIn,
)
from mailgate.services.message_mime import build_upload, parse_internal_date

TEXT_TYPES = ("*", "plain", "html")
DEFAULT_SEARCH_PATH = "INBOX"


def _flag_changes(ops: FlagOpsIn | None) -> FlagChanges | None:
    if ops is None:
        return None
    return FlagChanges(
        add=tuple(ops.add) if ops.add is not None else None,
        delete=tuple(ops.delete) if ops.delete is not None else None,
        set=tuple(ops.set) if ops.set is not None else None,
    )


def changes_of(update: MessageUpdateIn) -> MessageChanges:
    return MessageChanges(flags=_flag_changes(update.flags), labels=_flag_changes(update.labels))


def check_text_type(text_type: str | None) -> None:
    if text_type is not None and text_type not in TEXT_TYPES:
        raise BadRequest('"textType" must be one of *, plain, html', key="textType")


class MessageService:
    def __init__(self, accounts: AccountService, backends: BackendCache) -> None:
        self.accounts = accounts
        self.backends = backends

    async def backend(self, account: str) -> MailBackend:
        return await self.backends.get(await self.accounts.record(account))

    async def list_messages(self, account: str, path: str, paging: PageRequest) -> dict[str, Any]:
        return await (await self.backend(account)).list_messages(path, paging)

    async def search(
        self, account: str, path: str | None, search: dict[str, Any], paging: PageRequest
    ) -> dict[str, Any]:
        backend = await self.backend(account)
        return await backend.search_messages(path or DEFAULT_SEARCH_PATH, search, paging)

    async def get_message(self, account: str, message: str, options: ReadOptions) -> dict[str, Any]:
        check_text_type(options.text_type)
        return await (await self.backend(account)).get_message(message, options)

    async def get_text(
        self,
        account: str,
        text: str,
        *,
        text_type: str,
        max_bytes: int | None,
        web_safe_html: bool,
    ) -> dict[str, Any]:
        check_text_type(text_type)
        backend = await self.backend(account)
        return await backend.get_text(
            text, text_type=text_type, max_bytes=max_bytes, web_safe_html=web_safe_html
        )

    async def source(self, account: str, message: str) -> Download:
        return await (await self.backend(account)).message_source(message)

    async def attachment(self, account: str, attachment: str) -> Download:
        return await (await self.backend(account)).download_attachment(attachment)

    async def update(self, account: str, message: str, body: MessageUpdateIn) -> dict[str, Any]:
        backend = await self.backend(account)
        return await backend.update_message(message, changes_of(body))

    async def move(self, account: str, message: str, path: str) -> dict[str, Any]:
        return await (await self.backend(account)).move_message(message, path)

    async def delete(self, account: str, message: str, *, force: bool) -> dict[str, Any]:
        return await (await self.backend(account)).delete_message(message, force=force)

    async def upload(self, account: str, body: MessageUploadIn) -> dict[str, Any]:
        raw, message_id = build_upload(body)
        internal_date = parse_internal_date(body.internalDate)
        backend = await self.backend(account)
        out = await backend.append_message(
            body.path, raw, flags=body.flags, internal_date=internal_date
        )
        if message_id:
            out["messageId"] = message_id
        if body.reference is not None and body.reference.message:
            out["reference"] = {
                "message": body.reference.message,
                "success": False,
                "error": "Referenced messages are not processed for uploads",
            }
        return out

    async def update_many(self, account: str, path: str, body: MessagesUpdateIn) -> dict[str, Any]:
        backend = await self.backend(account)
        return await backend.update_messages(path, body.search, changes_of(body.update))

    async def move_many(self, account: str, path: str, body: MessagesMoveIn) -> dict[str, Any]:
        return await (await self.backend(account)).move_messages(path, body.search, body.path)

    async def delete_many(
        self, account: str, path: str, body: MessagesDeleteIn, *, force: bool
    ) -> dict[str, Any]:
        backend = await self.backend(account)
        return await backend.delete_messages(path, body.search, force=force)
