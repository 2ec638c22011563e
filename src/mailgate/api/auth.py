"""API token checks: ``Authorization: Bearer <token>`` or ``?access_token=<token>``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mailgate.api.deps import get_container
from mailgate.errors import Forbidden, Unauthorized
from mailgate.runtime.container import Container
from mailgate.store.tokens import TokenRecord


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("access_token") or None


async def authenticate(request: Request, container: Container, scope: str) -> TokenRecord:
    token = presented_token(request)
    if not token:
        raise Unauthorized("Missing access token", "MissingToken")
    record = await container.tokens.lookup(token)
    if record is None:
        raise Unauthorized("Invalid access token", "InvalidToken")
    if not record.allows(scope):
        raise Forbidden(f"This token does not have the '{scope}' scope", "MissingScope")
    account = request.path_params.get("account")
    if record.account is not None and account is not None and account != record.account:
        raise Forbidden("This token is bound to another account", "AccountMismatch")
    client = request.client.host if request.client else None
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
