"""Licence routes: ``GET/POST/DELETE /v1/license`` (mailgate is MIT licensed: nothing to do)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mailgate.api.auth import InstanceToken
from mailgate.services.license import license_info, license_removed

router = APIRouter(prefix="/v1", tags=["License"])

MAX_LICENSE_CHARS = 64 * 1024


class LicenseIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    license: str = Field(min_length=1, max_length=MAX_LICENSE_CHARS)


@router.get("/license", summary="Request license info")
async def get_license(request: Request, _token: InstanceToken) -> dict[str, Any]:
    return license_info(request.url.hostname)


@router.post("/license", summary="Register a license")
async def register_license(
    _body: LicenseIn, request: Request, _token: InstanceToken
) -> dict[str, Any]:
    """The key is accepted and ignored: mailgate needs none."""
    return license_info(request.url.hostname)


@router.delete("/license", summary="Remove license")
async def remove_license(_token: InstanceToken) -> dict[str, Any]:
    return license_removed()
