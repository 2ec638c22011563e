"""``GET /v1/account/{account}/server-signatures``: signatures the mail server keeps.

IMAP has no signatures. A backend that can list them (Gmail's ``sendAs`` signatures) offers a
``server_signatures()`` method (:class:`SignatureSource`); for any other the reply is
``{signatures: [], signaturesSupported: false}``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Path

from mailgate.api.auth import ApiToken
from mailgate.api.deps import ContainerDep

router = APIRouter(prefix="/v1", tags=["Account"])


@runtime_checkable
class SignatureSource(Protocol):
    async def server_signatures(self) -> list[dict[str, Any]]:
        """``[{address, signature}]`` as the provider reports them."""


@router.get("/account/{account}/server-signatures", summary="List Account Signatures")
async def server_signatures(
    c: ContainerDep, _token: ApiToken, account: str = Path(..., max_length=256)
) -> dict[str, Any]:
    backend = await c.message_service.backend(account)  # NotFound AccountNotFound
    if isinstance(backend, SignatureSource):
        return {"signatures": await backend.server_signatures(), "signaturesSupported": True}
    return {"signatures": [], "signaturesSupported": False}
