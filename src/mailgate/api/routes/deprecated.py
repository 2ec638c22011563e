"""EmailEngine's Document Store endpoints (deprecated there, absent here):
``POST /v1/chat/{account}`` and ``POST /v1/unified/search`` answer a 400 that says so."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path

from mailgate.api.auth import ApiToken, InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.errors import BadRequest, NotFound

OptionalBody = Body(None)
router = APIRouter(prefix="/v1", tags=["Deprecated endpoints (Document Store)"])

DOCUMENT_STORE_CODE = "DocumentStoreDisabled"
DOCUMENT_STORE_MESSAGE = (
    "The Document Store is not available: mailgate has none (it is deprecated in EmailEngine). "
    "Use the per-account message listing and search routes instead"
)


@router.post("/chat/{account}", summary="Chat with emails", deprecated=True)
async def chat(
    c: ContainerDep,
    _token: ApiToken,
    account: str = Path(..., max_length=256),
    _body: dict[str, Any] | None = OptionalBody,
) -> dict[str, Any]:
    if not await c.accounts.exists(account):
        raise NotFound("Account record was not found for requested ID", "AccountNotFound")
    raise BadRequest(DOCUMENT_STORE_MESSAGE, DOCUMENT_STORE_CODE)


@router.post("/unified/search", summary="Unified search for messages", deprecated=True)
async def unified_search(
    _token: InstanceToken, _body: dict[str, Any] | None = OptionalBody
) -> dict[str, Any]:
    raise BadRequest(DOCUMENT_STORE_MESSAGE, DOCUMENT_STORE_CODE)
