"""Template routes: ``/v1/templates`` and ``/v1/templates/template/{template}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query

from mailgate.api.auth import ApiToken, InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.api.routes.submit import SendingDep
from mailgate.errors import BadRequest, Forbidden
from mailgate.services.sending.inputs import TemplateCreateIn, TemplateUpdateIn
from mailgate.services.sending.templates import MAX_PAGE_SIZE

router = APIRouter(prefix="/v1/templates", tags=["Templates"])

TemplateId = Path(..., min_length=1, max_length=256)


@router.get("", summary="List account templates")
async def list_templates(
    s: SendingDep,
    token: ApiToken,
    account: str | None = Query(None, max_length=256),
    page: int = Query(0, ge=0, le=1_000_000),
    pageSize: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    if token.account is not None and account != token.account:
        raise Forbidden("This token is bound to another account", "AccountMismatch")
    return await s.templates.list(account, page, pageSize)


@router.post("/template", summary="Create template")
async def create_template(
    body: TemplateCreateIn, s: SendingDep, c: ContainerDep, token: ApiToken
) -> dict[str, Any]:
    if token.account is not None and body.account != token.account:
        raise Forbidden("This token is bound to another account", "AccountMismatch")
    exists = await c.accounts.exists(body.account) if body.account else True
    return await s.templates.create(body, exists)


@router.get("/template/{template}", summary="Get template information")
async def get_template(
    s: SendingDep, _token: InstanceToken, template: str = TemplateId
) -> dict[str, Any]:
    return await s.templates.get(template)


@router.put("/template/{template}", summary="Update a template")
async def update_template(
    body: TemplateUpdateIn, s: SendingDep, _token: InstanceToken, template: str = TemplateId
) -> dict[str, Any]:
    return await s.templates.update(template, body)


@router.delete("/template/{template}", summary="Remove a template")
async def delete_template(
    s: SendingDep, _token: InstanceToken, template: str = TemplateId
) -> dict[str, Any]:
    return await s.templates.delete(template)


@router.delete("/account/{account}", summary="Flush templates")
async def flush_templates(
    account: str, s: SendingDep, _token: ApiToken, force: bool = False
) -> dict[str, Any]:
    if not force:
        raise BadRequest("Set force=true to flush the account's templates", "InputValidationError")
    return await s.templates.flush(account)
