"""Access tokens: list (description, scopes, account, last use), issue (the token is shown once,
on the reply to the form, never stored), revoke. Through :class:`~mailgate.store.tokens.
TokenStore`, as ``/v1/tokens`` does."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from mailgate.api.admin.auth import AdminSession, admin_router, client_ip, container_of, done, show
from mailgate.api.admin.forms import field_errors, page_number, read_form
from mailgate.services.inputs import TokenCreateIn
from mailgate.store.tokens import SCOPES

router = admin_router()

PAGE_SIZE = 50  # tokens per list page


async def _tokens_page(
    request: Request,
    session: AdminSession,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    issued: str | None = None,
) -> Response:
    page = page_number(request.query_params.get("page"))
    rows = await container_of(request).tokens.list()
    rows.sort(key=lambda r: r.created, reverse=True)
    total = len(rows)
    shown = [msgspec.to_builtins(r) for r in rows[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]]
    return await show(
        request,
        session,
        "tokens.html",
        status=status,
        tokens=shown,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        scopes=SCOPES,
        values=values if values is not None else {"scopes": ["api"]},
        errors=errors or {},
        issued=issued,
    )


@router.get("/tokens")
async def tokens_list(request: Request, session: AdminSession) -> Response:
    return await _tokens_page(request, session)


@router.post("/tokens")
async def token_issue(request: Request, session: AdminSession) -> Response:
    c = container_of(request)
    form = await read_form(request)
    echo = form.echo()
    echo["scopes"] = form.getlist("scopes")
    raw = {
        "description": form.get("description").strip(),
        "scopes": form.getlist("scopes"),
        "account": form.text("account"),
    }
    try:
        body = TokenCreateIn.model_validate(raw)
    except ValidationError as exc:
        return await _tokens_page(
            request, session, status=400, values=echo, errors=field_errors(exc)
        )
    if body.account is not None and not await c.accounts.exists(body.account):
        errors = {"account": "Account record was not found for requested ID"}
        return await _tokens_page(request, session, status=400, values=echo, errors=errors)
    token, _record = await c.tokens.issue(
        scopes=list(body.scopes),
        account=body.account,
        description=body.description,
        remote_address=client_ip(request),
    )
    return await _tokens_page(request, session, issued=token)


@router.post("/tokens/{token_id}/revoke")
async def token_revoke(token_id: str, request: Request, session: AdminSession) -> Response:
    c = container_of(request)
    if await c.tokens.get(token_id) is None:
        return await done(request, session, "/admin/tokens", "That token no longer exists.")
    await c.tokens.delete(token_id)
    return await done(request, session, "/admin/tokens", "Token revoked.")
