"""Configuration > SMTP gateways, Configuration > Templates and the Outbox, through the
sending services of the container (``container.sending``), as the ``/v1`` routes do.

Gateway passwords are write-only (an empty field on the edit form keeps the stored one).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from mailgate.api.admin.auth import AdminSession, admin_router, container_of, done, show
from mailgate.api.admin.forms import Form, field_errors, page_number, read_form
from mailgate.errors import ApiError, ConfigError
from mailgate.runtime.container import Container
from mailgate.services.sending.inputs import (
    GatewayCreateIn,
    GatewayUpdateIn,
    TemplateCreateIn,
    TemplateUpdateIn,
)
from mailgate.services.sending.wiring import Sending

router = admin_router()

PAGE_SIZE = 50  # rows per list page (gateways, templates, outbox)
MAX_ACCOUNT_FILTER = 256  # characters of the template list's account filter


def _sending(c: Container) -> Sending:
    if c.sending is None:
        raise ConfigError("Sending is not configured in this process")
    return c.sending


# --- SMTP gateways -------------------------------------------------------------------------------


@router.get("/config/gateways")
async def gateways_list(request: Request, session: AdminSession) -> Response:
    page = page_number(request.query_params.get("page"))
    listing = await _sending(container_of(request)).gateways.list(page, PAGE_SIZE)
    return await show(request, session, "gateways.html", listing=listing, page=page)


def gateway_body(form: Form, *, editing: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": form.text("name"),
        "host": form.text("host"),
        "port": form.number("port"),
        "secure": form.checkbox("secure"),
        "user": form.text("user"),
    }
    if form.get("pass"):
        body["pass"] = form.get("pass")
    if not editing:
        body["gateway"] = form.text("gateway")
        return {k: v for k, v in body.items() if v is not None}
    return {k: v for k, v in body.items() if v is not None or k == "user"}


async def _gateway_page(
    request: Request,
    session: AdminSession,
    *,
    gateway: dict[str, Any] | None,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    if values is None:
        values = {"port": "587"}
        if gateway is not None:
            values = {k: v for k, v in gateway.items() if k != "pass" and v is not None}
            values["secure"] = "1" if gateway.get("secure") else ""
    return await show(
        request,
        session,
        "gateway_form.html",
        status=status,
        gateway=gateway,
        values=values,
        errors=errors or {},
    )


@router.get("/config/gateways/new")
async def gateway_new_page(request: Request, session: AdminSession) -> Response:
    return await _gateway_page(request, session, gateway=None)


@router.post("/config/gateways/new")
async def gateway_create(request: Request, session: AdminSession) -> Response:
    form = await read_form(request)
    try:
        body = GatewayCreateIn.model_validate(gateway_body(form, editing=False))
    except ValidationError as exc:
        return await _gateway_page(request, session, gateway=None, status=400,
                                   values=form.echo("pass"), errors=field_errors(exc))  # fmt: skip
    created = await _sending(container_of(request)).gateways.create(body)
    return await done(
        request, session, "/admin/config/gateways", f"Gateway {created['gateway']} saved."
    )


@router.get("/config/gateways/{gateway_id}")
async def gateway_edit_page(gateway_id: str, request: Request, session: AdminSession) -> Response:
    gateway = await _sending(container_of(request)).gateways.get(gateway_id)
    return await _gateway_page(request, session, gateway=gateway)


@router.post("/config/gateways/{gateway_id}")
async def gateway_update(gateway_id: str, request: Request, session: AdminSession) -> Response:
    gateways = _sending(container_of(request)).gateways
    gateway = await gateways.get(gateway_id)
    form = await read_form(request)
    try:
        body = GatewayUpdateIn.model_validate(gateway_body(form, editing=True))
    except ValidationError as exc:
        return await _gateway_page(request, session, gateway=gateway, status=400,
                                   values=form.echo("pass"), errors=field_errors(exc))  # fmt: skip
    await gateways.update(gateway_id, body)
    return await done(request, session, "/admin/config/gateways", f"Gateway {gateway_id} saved.")


@router.post("/config/gateways/{gateway_id}/delete")
async def gateway_delete(gateway_id: str, request: Request, session: AdminSession) -> Response:
    await _sending(container_of(request)).gateways.delete(gateway_id)
    return await done(request, session, "/admin/config/gateways", f"Gateway {gateway_id} deleted.")


# --- Templates -----------------------------------------------------------------------------------


@router.get("/config/templates")
async def templates_list(request: Request, session: AdminSession) -> Response:
    page = page_number(request.query_params.get("page"))
    account = (request.query_params.get("account") or "").strip()[:MAX_ACCOUNT_FILTER] or None
    listing = await _sending(container_of(request)).templates.list(account, page, PAGE_SIZE)
    return await show(
        request, session, "templates.html", listing=listing, page=page, account=account or ""
    )


def template_body(form: Form, *, editing: bool) -> dict[str, Any]:
    content = {
        "subject": form.get("content.subject") or None,
        "text": form.get("content.text") or None,
        "html": form.get("content.html") or None,
        "previewText": form.get("content.previewText") or None,
    }
    body: dict[str, Any] = {
        "name": form.text("name"),
        "description": form.get("description") or None,
        "format": form.text("format") or "html",
        "content": {k: v for k, v in content.items() if v is not None},
    }
    if not editing:
        body["account"] = form.text("account")
    return {k: v for k, v in body.items() if v is not None}


async def _template_page(
    request: Request,
    session: AdminSession,
    *,
    template: dict[str, Any] | None,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    if values is None:
        values = {"format": "html"}
        if template is not None:
            values = {k: v for k, v in template.items() if k != "content" and v is not None}
            for key, value in (template.get("content") or {}).items():
                if value is not None:
                    values[f"content.{key}"] = value
    return await show(
        request,
        session,
        "template_form.html",
        status=status,
        tpl=template,
        values=values,
        errors=errors or {},
    )


@router.get("/config/templates/new")
async def template_new_page(request: Request, session: AdminSession) -> Response:
    return await _template_page(request, session, template=None)


@router.post("/config/templates/new")
async def template_create(request: Request, session: AdminSession) -> Response:
    c = container_of(request)
    form = await read_form(request)
    try:
        body = TemplateCreateIn.model_validate(template_body(form, editing=False))
    except ValidationError as exc:
        return await _template_page(request, session, template=None, status=400,
                                    values=form.echo(), errors=field_errors(exc))  # fmt: skip
    exists = await c.accounts.exists(body.account) if body.account else True
    try:
        await _sending(c).templates.create(body, exists)
    except ApiError as exc:
        return await _template_page(request, session, template=None, status=exc.status_code,
                                    values=form.echo(), errors={"account": exc.message})  # fmt: skip
    return await done(request, session, "/admin/config/templates", "Template created.")


@router.get("/config/templates/{template_id}")
async def template_edit_page(template_id: str, request: Request, session: AdminSession) -> Response:
    template = await _sending(container_of(request)).templates.get(template_id)
    return await _template_page(request, session, template=template)


@router.post("/config/templates/{template_id}")
async def template_update(template_id: str, request: Request, session: AdminSession) -> Response:
    templates = _sending(container_of(request)).templates
    template = await templates.get(template_id)
    form = await read_form(request)
    try:
        body = TemplateUpdateIn.model_validate(template_body(form, editing=True))
    except ValidationError as exc:
        return await _template_page(request, session, template=template, status=400,
                                    values=form.echo(), errors=field_errors(exc))  # fmt: skip
    await templates.update(template_id, body)
    return await done(request, session, "/admin/config/templates", "Template saved.")


@router.post("/config/templates/{template_id}/delete")
async def template_delete(template_id: str, request: Request, session: AdminSession) -> Response:
    await _sending(container_of(request)).templates.delete(template_id)
    return await done(request, session, "/admin/config/templates", "Template deleted.")


# --- Outbox --------------------------------------------------------------------------------------


@router.get("/outbox")
async def outbox_list(request: Request, session: AdminSession) -> Response:
    page = page_number(request.query_params.get("page"))
    listing = await _sending(container_of(request)).submit.list_outbox(page, PAGE_SIZE)
    return await show(request, session, "outbox.html", listing=listing, page=page)


@router.post("/outbox/{queue_id}/cancel")
async def outbox_cancel(queue_id: str, request: Request, session: AdminSession) -> Response:
    await _sending(container_of(request)).submit.cancel(queue_id)
    return await done(request, session, "/admin/outbox", f"Message {queue_id} removed.")
