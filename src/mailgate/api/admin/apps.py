"""Configuration > OAuth2 apps: list, create, edit, delete through
:class:`~mailgate.services.oauth2.apps.AppService` (as ``/v1/oauth2`` does).

Secrets (``clientSecret``, ``serviceKey``) are write-only: never put back into a page; an empty
field on the edit form keeps the stored one.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from mailgate.api.admin.auth import AdminSession, admin_router, container_of, done, show
from mailgate.api.admin.forms import FieldError, Form, field_errors, page_number, read_form
from mailgate.errors import BadRequest, ConfigError
from mailgate.runtime.container import Container
from mailgate.services.oauth2.apps import AppService
from mailgate.services.oauth2.inputs import AppCreate, AppUpdate

router = admin_router()

PAGE_SIZE = 50  # apps per list page
PROVIDERS = ("gmail", "outlook", "mailRu", "generic", "gmailService", "outlookService")
SECRET_FIELDS = ("clientSecret", "serviceKey")
TEXT_FIELDS = (
    "name", "title", "description", "clientId", "redirectUrl", "authority", "tenant",
    "authorizationUrl", "tokenUrl", "userInfoUrl", "revocationUrl", "apiUrl",
    "serviceClientEmail",
)  # fmt: skip
CHOICE_FIELDS = ("baseScopes", "cloud")


def _apps(c: Container) -> AppService:
    if c.oauth2 is None:
        raise ConfigError("OAuth2 services are not configured in this process")
    return c.oauth2.apps


def app_url(app_id: str) -> str:
    return f"/admin/config/oauth2/{app_id}"


@router.get("/config/oauth2")
async def apps_list(request: Request, session: AdminSession) -> Response:
    page = page_number(request.query_params.get("page"))
    listing = await _apps(container_of(request)).list_apps(page=page, page_size=PAGE_SIZE)
    return await show(request, session, "oauth2_list.html", listing=listing, page=page)


def _server(form: Form, prefix: str) -> dict[str, Any] | None:
    host = form.text(f"{prefix}.host")
    if not host:
        return None
    return {"host": host, "port": form.number(f"{prefix}.port"),
            "secure": form.checkbox(f"{prefix}.secure")}  # fmt: skip


def app_body(form: Form, *, editing: bool) -> dict[str, Any]:
    """The ``/v1/oauth2`` body of the form. Editing: empty fields clear (None), empty secrets
    keep the stored value (left out)."""
    body: dict[str, Any] = {name: form.text(name) for name in TEXT_FIELDS + CHOICE_FIELDS}
    body["enabled"] = form.checkbox("enabled")
    scopes = form.lines("extraScopes")
    body["extraScopes"] = scopes or None
    body["imap"] = _server(form, "imap")
    body["smtp"] = _server(form, "smtp")
    for name in SECRET_FIELDS:
        value = form.get(name).strip()
        if value:
            body[name] = value
    if not editing:
        body["provider"] = form.text("provider")
        return {k: v for k, v in body.items() if v is not None}
    if body.get("name") is None:
        raise FieldError("name", "Field required")
    return body


async def _form_page(
    request: Request,
    session: AdminSession,
    *,
    app: dict[str, Any] | None,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    if values is None:
        values = {"enabled": "1", "baseScopes": "imap", "provider": "generic"}
        if app is not None:
            values = {k: v for k, v in app.items() if k not in SECRET_FIELDS}
            values["enabled"] = "1" if app.get("enabled") else ""
            values["extraScopes"] = "\n".join(app.get("extraScopes") or [])
            for prefix in ("imap", "smtp"):
                server = app.get(prefix) or {}
                for key in ("host", "port", "secure"):
                    if server.get(key) not in (None, False):
                        values[f"{prefix}.{key}"] = "1" if server[key] is True else server[key]
    return await show(
        request,
        session,
        "oauth2_form.html",
        status=status,
        app=app,
        values=values,
        errors=errors or {},
        providers=PROVIDERS,
        secrets_set={name: bool(app and app.get(name)) for name in SECRET_FIELDS},
    )


@router.get("/config/oauth2/new")
async def app_new_page(request: Request, session: AdminSession) -> Response:
    return await _form_page(request, session, app=None)


@router.post("/config/oauth2/new")
async def app_create(request: Request, session: AdminSession) -> Response:
    form = await read_form(request)
    echo = form.echo(*SECRET_FIELDS)
    try:
        body = AppCreate.model_validate(app_body(form, editing=False))
        await _apps(container_of(request)).create(body)
    except FieldError as exc:
        errors = {exc.field: exc.message}
        return await _form_page(request, session, app=None, status=400, values=echo, errors=errors)
    except ValidationError as exc:
        errors = field_errors(exc)
        return await _form_page(request, session, app=None, status=400, values=echo, errors=errors)
    except BadRequest as exc:
        errors = {"_form": exc.message}
        return await _form_page(request, session, app=None, status=400, values=echo, errors=errors)
    return await done(request, session, "/admin/config/oauth2", "OAuth2 application created.")


@router.get("/config/oauth2/{app_id}")
async def app_edit_page(app_id: str, request: Request, session: AdminSession) -> Response:
    app = await _apps(container_of(request)).get(app_id)
    return await _form_page(request, session, app=app)


@router.post("/config/oauth2/{app_id}")
async def app_update(app_id: str, request: Request, session: AdminSession) -> Response:
    apps = _apps(container_of(request))
    app = await apps.get(app_id)
    form = await read_form(request)
    echo = form.echo(*SECRET_FIELDS)
    try:
        body = AppUpdate.model_validate(app_body(form, editing=True))
        await apps.update(app_id, body)
    except FieldError as exc:
        errors = {exc.field: exc.message}
        return await _form_page(request, session, app=app, status=400, values=echo, errors=errors)
    except ValidationError as exc:
        errors = field_errors(exc)
        return await _form_page(request, session, app=app, status=400, values=echo, errors=errors)
    except BadRequest as exc:
        errors = {"_form": exc.message}
        return await _form_page(request, session, app=app, status=400, values=echo, errors=errors)
    return await done(request, session, "/admin/config/oauth2", "OAuth2 application saved.")


@router.post("/config/oauth2/{app_id}/delete")
async def app_delete(app_id: str, request: Request, session: AdminSession) -> Response:
    result = await _apps(container_of(request)).delete(app_id)
    note = f" {result['accounts']} account(s) still refer to it." if result.get("accounts") else ""
    return await done(
        request, session, "/admin/config/oauth2", f"OAuth2 application deleted.{note}"
    )
