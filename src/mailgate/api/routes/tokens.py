"""Access token routes: ``/v1/tokens``."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Query, Request

from mailgate.api.auth import InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.errors import NotFound
from mailgate.services.inputs import TokenCreateIn

router = APIRouter(prefix="/v1", tags=["Access Tokens"])


@router.post("/tokens", summary="Provision an access token")
async def create_token(
    body: TokenCreateIn, request: Request, c: ContainerDep, _token: InstanceToken
) -> dict[str, Any]:
    if body.account is not None and not await c.accounts.exists(body.account):
        raise NotFound("Account record was not found for requested ID", "AccountNotFound")
    token, record = await c.tokens.issue(
        scopes=list(body.scopes),
        account=body.account,
        description=body.description,
        metadata=body.metadata,
        ip=body.ip,
        remote_address=request.client.host if request.client else None,
        restrictions=body.restrictions,
        permissions=body.permissions,
        expires=body.expires,
    )
    return {"token": token, "id": record.id}


@router.get("/tokens", summary="List access tokens")
async def list_tokens(
    c: ContainerDep,
    _token: InstanceToken,
    page: int = Query(0, ge=0),
    pageSize: int = Query(20, ge=1, le=1000),
    query: str | None = Query(None, max_length=256),
    account: str | None = Query(None, max_length=256),
) -> dict[str, Any]:
    rows = await c.tokens.list()
    if account is not None:
        rows = [r for r in rows if r.account == account]
    if query:
        needle = query.lower()
        rows = [
            r for r in rows
            if needle in (r.description or "").lower() or needle in r.id or needle == (r.account or "")
        ]  # fmt: skip
    total = len(rows)
    page_rows = rows[page * pageSize : (page + 1) * pageSize]
    return {
        "account": account,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // pageSize)),
        "tokens": [msgspec.to_builtins(r) for r in page_rows],
    }


@router.get("/tokens/{token}", summary="Get token info")
async def get_token(token: str, c: ContainerDep, _token: InstanceToken) -> dict[str, Any]:
    record = await c.tokens.get(token)
    if record is None:
        raise NotFound("Token was not found", "TokenNotFound")
    return msgspec.to_builtins(record)  # type: ignore[no-any-return]


@router.delete("/tokens/{token}", summary="Remove a token")
async def delete_token(token: str, c: ContainerDep, _token: InstanceToken) -> dict[str, Any]:
    if not await c.tokens.delete(token):
        raise NotFound("Token was not found", "TokenNotFound")
    return {"deleted": True}
