"""Settings routes: ``GET/POST /v1/settings``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mailgate.api.auth import InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.services.settings import SettingsUpdate

router = APIRouter(prefix="/v1", tags=["Settings"])


@router.get("/settings", summary="List specific settings")
async def get_settings(request: Request, c: ContainerDep, _token: InstanceToken) -> dict[str, Any]:
    wanted = [k for k, v in request.query_params.items() if v.lower() in ("true", "1", "")]
    wanted = [k for k in wanted if k != "access_token"]
    return await c.settings.get_many(wanted or None)


@router.post("/settings", summary="Set setting values")
async def set_settings(
    body: SettingsUpdate, c: ContainerDep, _token: InstanceToken
) -> dict[str, Any]:
    return {"updated": await c.settings.update(body)}
