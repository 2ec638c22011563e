"""API token checks: ``Authorization: Bearer <token>`` or ``?access_token=<token>``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mailgate.api.deps import get_container
from mailgate.errors import Forbidden, Unauthorized
from mailgate.runtime.container import Container
from mailgate.services.token_audit import TokenAudit
from mailgate.store.tokens import TokenRecord


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("access_token") or None


async def _audit(
    request: Request,
    container: Container,
    record: TokenRecord,
    account: str | None,
    client: str | None,
    denied: str | None,
) -> None:
    """One token audit log entry (setting ``tokenAuditLog``; services/token_audit.py)."""
    # getattr: containers built by hand (tests, tools) may predate the audit log
    audit: TokenAudit | None = getattr(container, "token_audit", None)
    if audit is None:
        return
    route = getattr(request.scope.get("route"), "path", None) or request.url.path
    await audit.record(
        record.id,
        method=request.method,
        route=route,
        ip=client,
        account=account,
        denied_reason=denied,
    )


async def authenticate(request: Request, container: Container, scope: str) -> TokenRecord:
    token = presented_token(request)
    if not token:
        raise Unauthorized("Missing access token", "MissingToken")
    record = await container.tokens.lookup(token)
    if record is None:
        raise Unauthorized("Invalid access token", "InvalidToken")
    account = request.path_params.get("account")
    client = request.client.host if request.client else None
    denied: str | None = None
    if not record.allows(scope):
        denied = "scope"
    elif record.account is not None and account is not None and account != record.account:
        denied = "account"
    await _audit(request, container, record, account, client, denied)
    if denied == "scope":
        raise Forbidden(f"This token does not have the '{scope}' scope", "MissingScope")
    if denied == "account":
        raise Forbidden("This token is bound to another account", "AccountMismatch")
    await container.tokens.touch(record, client)
    request.state.token = record
    return record


async def require_api_token(
    request: Request, container: Annotated[Container, Depends(get_container)]
) -> TokenRecord:
    return await authenticate(request, container, "api")


async def require_instance_token(
    request: Request, token: Annotated[TokenRecord, Depends(require_api_token)]
) -> TokenRecord:
    """Routes about the whole instance are closed to account-bound tokens."""
    if token.account is not None:
        raise Forbidden("This token is bound to one account", "AccountMismatch")
    return token


ApiToken = Annotated[TokenRecord, Depends(require_api_token)]
InstanceToken = Annotated[TokenRecord, Depends(require_instance_token)]
