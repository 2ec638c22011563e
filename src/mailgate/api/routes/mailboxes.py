"""Mailbox routes: ``/v1/account/{account}/mailboxes`` and ``/mailbox``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from mailgate.api.auth import ApiToken
from mailgate.api.deps import ContainerDep
from mailgate.services.inputs import MailboxCreateIn, MailboxModifyIn

router = APIRouter(prefix="/v1/account/{account}", tags=["Mailbox"])


@router.get("/mailboxes", summary="List mailboxes")
async def list_mailboxes(
    account: str, c: ContainerDep, _token: ApiToken, counters: bool = False
) -> dict[str, Any]:
    return await c.mailbox_service.list_mailboxes(account, counters=counters)


@router.post("/mailbox", summary="Create mailbox")
async def create_mailbox(
    account: str, body: MailboxCreateIn, c: ContainerDep, _token: ApiToken
) -> dict[str, Any]:
    return await c.mailbox_service.create(account, body.path)


@router.put("/mailbox", summary="Modify mailbox")
async def modify_mailbox(
    account: str, body: MailboxModifyIn, c: ContainerDep, _token: ApiToken
) -> dict[str, Any]:
    return await c.mailbox_service.modify(
        account, body.path, new_path=body.newPath, subscribed=body.subscribed
    )


@router.delete("/mailbox", summary="Delete mailbox")
async def delete_mailbox(
    account: str,
    c: ContainerDep,
    _token: ApiToken,
    path: str = Query(..., min_length=1, max_length=4096),
) -> dict[str, Any]:
    return await c.mailbox_service.delete(account, path)
