"""``GET /v1/autoconfig``: IMAP/SMTP settings for an address (built-in table or a guess)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from mailgate.api.auth import ApiToken
from mailgate.services.autoconfig import MAX_ADDRESS_LENGTH, discover

router = APIRouter(prefix="/v1", tags=["Settings"])


@router.get("/autoconfig", summary="Discover Email settings")
async def autoconfig(
    _token: ApiToken,
    email: str = Query(..., min_length=3, max_length=MAX_ADDRESS_LENGTH),
) -> dict[str, Any]:
    return discover(email)
