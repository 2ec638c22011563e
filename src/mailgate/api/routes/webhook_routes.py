"""Webhook route routes (read-only): ``GET /v1/webhookRoutes``, ``.../webhookRoute/{id}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query

from mailgate.api.auth import InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.api.routes.available import need

router = APIRouter(prefix="/v1", tags=["Webhooks"])

MAX_PAGE_SIZE = 1000


@router.get("/webhookRoutes", summary="List webhook routes")
async def list_routes(
    c: ContainerDep,
    _token: InstanceToken,
    page: int = Query(0, ge=0, le=1_000_000),
    pageSize: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    return await need(c.webhook_routes, "Webhook routes").list_routes(page, pageSize)


@router.get("/webhookRoutes/webhookRoute/{webhookRoute}", summary="Get webhook route information")
async def get_route(
    c: ContainerDep, _token: InstanceToken, webhookRoute: str = Path(..., max_length=256)
) -> dict[str, Any]:
    return await need(c.webhook_routes, "Webhook routes").get(webhookRoute)
