"""Log routes: ``GET /v1/logs/{account}`` (account log lines) and ``GET /v1/tokens/{token}/log``
(the token audit log)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from mailgate.api.auth import ApiToken, InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.api.routes.available import need
from mailgate.errors import NotFound

router = APIRouter(prefix="/v1")

MAX_PAGE_SIZE = 1000


@router.get(
    "/logs/{account}",
    tags=["Logs"],
    summary="Return IMAP logs for an account",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def account_logs(
    c: ContainerDep, _token: ApiToken, account: str = Path(..., max_length=256)
) -> PlainTextResponse:
    """The kept lines, oldest first, one JSON object a line (empty when logging is off)."""
    if not await c.accounts.exists(account):
        raise NotFound("Account record was not found for requested ID", "AccountNotFound")
    lines = await need(c.account_logs, "Account logs").lines(account)
    return PlainTextResponse(
        "".join(line + "\n" for line in lines),
        headers={"Content-Disposition": f'attachment; filename="logs-{account}.log"'},
    )


@router.get("/tokens/{token}/log", tags=["Access Tokens"], summary="Get token audit log")
async def token_log(
    c: ContainerDep,
    _token: InstanceToken,
    token: str = Path(..., max_length=256),
    page: int = Query(0, ge=0, le=1_000_000),
    pageSize: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    record = await c.tokens.get(token)
    if record is None:
        raise NotFound("Token was not found", "TokenNotFound")
    return await need(c.token_audit, "The token audit log").entries(record.id, page, pageSize)
