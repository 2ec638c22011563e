"""Account routes: ``/v1/account``, ``/v1/accounts``, ``/v1/verifyAccount``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from mailgate.api.auth import ApiToken, InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.domain.account import AccountState
from mailgate.errors import Forbidden
from mailgate.services.inputs import (
    AccountCreate,
    AccountUpdate,
    FlushIn,
    ReconnectIn,
    SyncIn,
    VerifyAccountIn,
)

router = APIRouter(prefix="/v1", tags=["Account"])


@router.post("/account", summary="Register new account")
async def create_account(body: AccountCreate, c: ContainerDep, token: ApiToken) -> dict[str, Any]:
    if token.account is not None and body.account != token.account:
        raise Forbidden("This token is bound to another account", "AccountMismatch")
    return await c.account_service.create(body)


@router.get("/accounts", summary="List accounts")
async def list_accounts(
    c: ContainerDep,
    _token: InstanceToken,
    page: int = Query(0, ge=0),
    pageSize: int = Query(20, ge=1, le=1000),
    state: AccountState | None = None,
    query: str | None = Query(None, max_length=256),
) -> dict[str, Any]:
    return await c.account_service.list_accounts(
        page=page, page_size=pageSize, state=state.value if state else None, query=query
    )


@router.get("/account/{account}", summary="Get account info")
async def get_account(account: str, c: ContainerDep, _token: ApiToken) -> dict[str, Any]:
    return await c.account_service.info(account)


@router.put("/account/{account}", summary="Update account info")
async def update_account(
    account: str, body: AccountUpdate, c: ContainerDep, _token: ApiToken
) -> dict[str, Any]:
    return await c.account_service.update(account, body)


@router.delete("/account/{account}", summary="Remove account")
async def delete_account(account: str, c: ContainerDep, _token: ApiToken) -> dict[str, Any]:
    return await c.account_service.delete(account)


@router.put("/account/{account}/reconnect", summary="Request reconnect")
async def reconnect_account(
    account: str, body: ReconnectIn, c: ContainerDep, _token: ApiToken
) -> dict[str, Any]:
    return await c.account_service.reconnect(account, body.reconnect)


@router.put("/account/{account}/flush", summary="Request account flush")
async def flush_account(
    account: str, body: FlushIn, c: ContainerDep, _token: ApiToken
) -> dict[str, Any]:
    return await c.account_service.flush(account, body)


@router.put("/account/{account}/sync", summary="Request syncing")
async def sync_account(
    account: str, body: SyncIn, c: ContainerDep, _token: ApiToken
) -> dict[str, Any]:
    return await c.account_service.sync(account, body.sync)


@router.post("/verifyAccount", summary="Verify IMAP and SMTP settings")
async def verify_account(
    body: VerifyAccountIn, c: ContainerDep, _token: ApiToken
) -> dict[str, Any]:
    return await c.account_service.verify(body)
