"""Submit routes: ``POST /v1/account/{account}/submit`` and ``.../message/{message}/submit``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header

from mailgate.api.auth import ApiToken
from mailgate.api.deps import ContainerDep
from mailgate.errors import ConfigError
from mailgate.runtime.container import Container
from mailgate.services.sending.inputs import DraftSubmitIn, SubmitIn
from mailgate.services.sending.wiring import Sending

router = APIRouter(prefix="/v1/account/{account}", tags=["Submit"])


def get_sending(c: ContainerDep) -> Sending:
    if c.sending is None:
        raise ConfigError("sending is not configured in this process")
    return c.sending


SendingDep = Annotated[Sending, Depends(get_sending)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=1024)]


@router.post("/submit", summary="Submit message for delivery")
async def submit_message(
    account: str,
    body: SubmitIn,
    s: SendingDep,
    _token: ApiToken,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    return await s.submit.submit(account, body, idempotency_key)


@router.post("/message/{message}/submit", summary="Submit a stored draft for delivery")
async def submit_draft(
    account: str,
    message: str,
    s: SendingDep,
    _token: ApiToken,
    body: DraftSubmitIn | None = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    return await s.submit.submit_draft(account, message, body or DraftSubmitIn(), idempotency_key)


__all__ = ["Container", "SendingDep", "router"]
