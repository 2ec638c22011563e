"""SMTP gateway routes: ``/v1/gateway``, ``/v1/gateways``, ``/v1/gateway/{gateway}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query

from mailgate.api.auth import InstanceToken
from mailgate.api.routes.submit import SendingDep
from mailgate.services.sending.gateways import MAX_PAGE_SIZE
from mailgate.services.sending.inputs import GatewayCreateIn, GatewayUpdateIn

router = APIRouter(prefix="/v1", tags=["SMTP Gateway"])

GatewayId = Path(..., min_length=1, max_length=256)


@router.post("/gateway", summary="Register new gateway")
async def create_gateway(
    body: GatewayCreateIn, s: SendingDep, _token: InstanceToken
) -> dict[str, Any]:
    return await s.gateways.create(body)


@router.get("/gateways", summary="List gateways")
async def list_gateways(
    s: SendingDep,
    _token: InstanceToken,
    page: int = Query(0, ge=0, le=1_000_000),
    pageSize: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    return await s.gateways.list(page, pageSize)


@router.get("/gateway/{gateway}", summary="Get gateway info")
async def get_gateway(
    s: SendingDep, _token: InstanceToken, gateway: str = GatewayId
) -> dict[str, Any]:
    return await s.gateways.get(gateway)


@router.delete("/gateway/{gateway}", summary="Remove SMTP gateway")
async def delete_gateway(
    s: SendingDep, _token: InstanceToken, gateway: str = GatewayId
) -> dict[str, Any]:
    return await s.gateways.delete(gateway)


@router.put("/gateway/edit/{gateway}", summary="Update gateway info")
async def update_gateway(
    body: GatewayUpdateIn, s: SendingDep, _token: InstanceToken, gateway: str = GatewayId
) -> dict[str, Any]:
    return await s.gateways.update(gateway, body)
