"""Mailbox use cases: list, create, rename, (un)subscribe, delete."""

from __future__ import annotations

from typing import Any

import msgspec

from mailgate.backends.base import MailBackend
from mailgate.backends.registry import BackendCache
from mailgate.errors import BadRequest
from mailgate.services.accounts import AccountService


class MailboxService:
    def __init__(self, accounts: AccountService, backends: BackendCache) -> None:
        self.accounts = accounts
        self.backends = backends

    async def backend(self, account: str) -> MailBackend:
        return await self.backends.get(await self.accounts.record(account))

    async def list_mailboxes(self, account: str, *, counters: bool) -> dict[str, Any]:
        backend = await self.backend(account)
        boxes = await backend.list_mailboxes(counters=counters)
        return {"mailboxes": [msgspec.to_builtins(b) for b in boxes]}

    async def create(self, account: str, path: str | list[str]) -> dict[str, Any]:
        if not path:
            raise BadRequest("Mailbox path is required")
        backend = await self.backend(account)
        return msgspec.to_builtins(await backend.create_mailbox(path))  # type: ignore[no-any-return]

    async def modify(
        self,
        account: str,
        path: str,
        *,
        new_path: str | list[str] | None,
        subscribed: bool | None,
    ) -> dict[str, Any]:
        if new_path is None and subscribed is None:
            raise BadRequest("Nothing to change: give newPath or subscribed")
        backend = await self.backend(account)
        path = await backend.resolve_path(path)
        out: dict[str, Any] = {"path": path}
        if new_path:
            change = await backend.rename_mailbox(path, new_path)
            out.update(msgspec.to_builtins(change))
            path = change.new_path or path
        if subscribed is not None:
            change = await backend.set_subscribed(path, subscribed)
            out["subscribed"] = change.subscribed
        return out

    async def delete(self, account: str, path: str) -> dict[str, Any]:
        if not path:
            raise BadRequest("Mailbox path is required")
        backend = await self.backend(account)
        return msgspec.to_builtins(await backend.delete_mailbox(path))  # type: ignore[no-any-return]
