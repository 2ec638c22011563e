"""Blocklist routes: ``GET /v1/blocklists``, ``GET/POST/DELETE /v1/blocklist/{listId}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request

from mailgate.api.auth import InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.api.routes.available import need
from mailgate.errors import NotFound
from mailgate.services.blocklists import MAX_ADDRESS, MAX_LIST_ID, BlocklistAddIn

router = APIRouter(prefix="/v1", tags=["Blocklists"])

MAX_PAGE_SIZE = 1000
ListIdP = Path(..., min_length=1, max_length=MAX_LIST_ID)


@router.get("/blocklists", summary="List blocklists")
async def list_blocklists(
    c: ContainerDep,
    _token: InstanceToken,
    page: int = Query(0, ge=0, le=1_048_576),
    pageSize: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    return await need(c.blocklists, "Blocklists").lists(page, pageSize)


@router.get("/blocklist/{listId}", summary="List blocklist entries")
async def list_entries(
    c: ContainerDep,
    _token: InstanceToken,
    listId: str = ListIdP,
    page: int = Query(0, ge=0, le=1_048_576),
    pageSize: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    return await need(c.blocklists, "Blocklists").entries(listId, page, pageSize)


@router.post("/blocklist/{listId}", summary="Add to blocklist")
async def add_entry(
    body: BlocklistAddIn,
    request: Request,
    c: ContainerDep,
    _token: InstanceToken,
    listId: str = ListIdP,
) -> dict[str, Any]:
    if not await c.accounts.exists(body.account):
        raise NotFound("Account record was not found for requested ID", "AccountNotFound")
    return await need(c.blocklists, "Blocklists").add(
        listId,
        body,
        remote_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


@router.delete("/blocklist/{listId}", summary="Remove from blocklist")
async def remove_entry(
    c: ContainerDep,
    _token: InstanceToken,
    listId: str = ListIdP,
    recipient: str = Query(..., min_length=3, max_length=MAX_ADDRESS),
) -> dict[str, Any]:
    return await need(c.blocklists, "Blocklists").remove(listId, recipient)
