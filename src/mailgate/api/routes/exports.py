"""Export routes: ``POST /v1/account/{account}/export``, ``GET .../exports``,
``GET/DELETE .../export/{exportId}``, ``GET .../export/{exportId}/download``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse

from mailgate.api.auth import ApiToken
from mailgate.api.deps import ContainerDep
from mailgate.api.routes.available import need
from mailgate.services.exports import FILE_SUFFIX, ExportIn

router = APIRouter(prefix="/v1", tags=["Export (Beta)"])

MAX_PAGE_SIZE = 1000
AccountP = Path(..., max_length=256)
ExportIdP = Path(..., max_length=64)


@router.post("/account/{account}/export", summary="Create export")
async def create_export(
    body: ExportIn, c: ContainerDep, _token: ApiToken, account: str = AccountP
) -> dict[str, Any]:
    return await need(c.exports, "Exports").create(account, body)


@router.get("/account/{account}/exports", summary="List exports")
async def list_exports(
    c: ContainerDep,
    _token: ApiToken,
    account: str = AccountP,
    page: int = Query(0, ge=0, le=1_000_000),
    pageSize: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    return await need(c.exports, "Exports").list_exports(account, page, pageSize)


@router.get("/account/{account}/export/{exportId}", summary="Get export status")
async def get_export(
    c: ContainerDep, _token: ApiToken, account: str = AccountP, exportId: str = ExportIdP
) -> dict[str, Any]:
    return await need(c.exports, "Exports").get(account, exportId)


@router.delete("/account/{account}/export/{exportId}", summary="Delete export")
async def delete_export(
    c: ContainerDep, _token: ApiToken, account: str = AccountP, exportId: str = ExportIdP
) -> dict[str, Any]:
    return await need(c.exports, "Exports").delete(account, exportId)


@router.get(
    "/account/{account}/export/{exportId}/download",
    summary="Download export file",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {"schema": {"type": "string"}}}}},
)
async def download_export(
    c: ContainerDep, _token: ApiToken, account: str = AccountP, exportId: str = ExportIdP
) -> FileResponse:
    path = await need(c.exports, "Exports").download(account, exportId)
    return FileResponse(path, media_type="application/gzip", filename=f"{exportId}{FILE_SUFFIX}")
