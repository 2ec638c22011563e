"""Outbox routes: ``GET /v1/outbox``, ``GET/DELETE /v1/outbox/{queueId}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query

from mailgate.api.auth import InstanceToken
from mailgate.api.routes.submit import SendingDep
from mailgate.services.sending.outbox import MAX_PAGE_SIZE

router = APIRouter(prefix="/v1", tags=["Outbox"])


@router.get("/outbox", summary="List queued messages")
async def list_outbox(
    s: SendingDep,
    _token: InstanceToken,
    page: int = Query(0, ge=0, le=1_000_000),
    pageSize: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    return await s.submit.list_outbox(page, pageSize)


@router.get("/outbox/{queueId}", summary="Get queued message")
async def get_queued(
    s: SendingDep,
    _token: InstanceToken,
    queueId: str = Path(..., max_length=256),
) -> dict[str, Any]:
    return await s.submit.get_queued(queueId)


@router.delete("/outbox/{queueId}", summary="Remove a message")
async def delete_queued(
    s: SendingDep,
    _token: InstanceToken,
    queueId: str = Path(..., max_length=256),
) -> dict[str, Any]:
    return await s.submit.cancel(queueId)
