"""Configuration > Service and Configuration > Webhooks: both saved through
:meth:`SettingsService.update` with a :class:`SettingsUpdate`, as ``POST /v1/settings`` does.

``serviceSecret`` is write-only: the page shows whether one is set, an empty field keeps it.
The webhook page's Test button POSTs a signed sample event to the URL in the form (saved or not)
and shows the receiver's status and reply.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from mailgate.api.admin.auth import AdminSession, admin_router, container_of, done, show
from mailgate.api.admin.forms import (
    FieldError,
    Form,
    field_errors,
    header_lines,
    parse_header_lines,
    read_form,
)
from mailgate.services.settings import EVENT_TYPES, SettingsUpdate
from mailgate.services.webhook_test import send_test
from mailgate.services.webhooks import payload

router = admin_router()

SERVICE_FIELDS = (
    "serviceUrl",
    "serviceSecret",
    "imapIndexer",
    "resyncDelay",
    "notifyText",
    "notifyTextSize",
    "notifyHeaders",
)
WEBHOOK_FIELDS = ("webhooksEnabled", "webhooks", "webhookEvents", "webhooksCustomHeaders")
ALL_EVENTS = "*"


# --- Service -------------------------------------------------------------------------------------


async def _service_values(request: Request) -> dict[str, Any]:
    stored = await container_of(request).settings.get_many(list(SERVICE_FIELDS))
    values = dict(stored)
    values["notifyHeaders"] = "\n".join(stored.get("notifyHeaders") or [])
    values["notifyText"] = "1" if stored.get("notifyText") else ""
    values["serviceSecret"] = ""
    return values


async def _service_page(
    request: Request,
    session: AdminSession,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    secret_set = bool((await container_of(request).settings.get_many(["serviceSecret"]))
                      .get("serviceSecret"))  # fmt: skip
    return await show(
        request,
        session,
        "config_service.html",
        status=status,
        values=values if values is not None else await _service_values(request),
        errors=errors or {},
        secret_set=secret_set,
    )


@router.get("/config/service")
async def service_page(request: Request, session: AdminSession) -> Response:
    return await _service_page(request, session)


def service_update(form: Form) -> dict[str, Any]:
    """The ``POST /v1/settings`` body of the Service form."""
    body: dict[str, Any] = {
        "serviceUrl": form.text("serviceUrl") or "",
        "imapIndexer": form.text("imapIndexer"),
        "resyncDelay": form.number("resyncDelay"),
        "notifyText": form.checkbox("notifyText"),
        "notifyTextSize": form.number("notifyTextSize") or 0,
        "notifyHeaders": form.lines("notifyHeaders"),
    }
    secret = form.get("serviceSecret")
    if form.checkbox("clearServiceSecret"):
        body["serviceSecret"] = None
    elif secret:
        body["serviceSecret"] = secret
    return {k: v for k, v in body.items() if v is not None or k == "serviceSecret"}


@router.post("/config/service")
async def service_save(request: Request, session: AdminSession) -> Response:
    form = await read_form(request)
    echo = form.echo("serviceSecret")
    try:
        update = SettingsUpdate.model_validate(service_update(form))
    except FieldError as exc:
        errors = {exc.field: exc.message}
        return await _service_page(request, session, status=400, values=echo, errors=errors)
    except ValidationError as exc:
        errors = field_errors(exc)
        return await _service_page(request, session, status=400, values=echo, errors=errors)
    await container_of(request).settings.update(update)
    return await done(request, session, "/admin/config/service", "Service settings saved.")


# --- Webhooks ------------------------------------------------------------------------------------


async def _webhook_values(request: Request) -> dict[str, Any]:
    stored = await container_of(request).settings.get_many(list(WEBHOOK_FIELDS))
    return {
        "webhooksEnabled": "1" if stored.get("webhooksEnabled") else "",
        "webhooks": stored.get("webhooks") or "",
        "webhookEvents": list(stored.get("webhookEvents") or []),
        "webhooksCustomHeaders": header_lines(stored.get("webhooksCustomHeaders")),
    }


async def _webhook_page(
    request: Request,
    session: AdminSession,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    test: Any = None,
) -> Response:
    shown = values if values is not None else await _webhook_values(request)
    events = shown.get("webhookEvents") or []
    shown["webhookEvents"] = [events] if isinstance(events, str) else list(events)
    return await show(
        request,
        session,
        "config_webhooks.html",
        status=status,
        values=shown,
        errors=errors or {},
        event_types=EVENT_TYPES,
        test=test,
    )


@router.get("/config/webhooks")
async def webhooks_page(request: Request, session: AdminSession) -> Response:
    return await _webhook_page(request, session)


def webhook_update(form: Form) -> dict[str, Any]:
    """The ``POST /v1/settings`` body of the Webhooks form."""
    events = form.getlist("webhookEvents")
    return {
        "webhooksEnabled": form.checkbox("webhooksEnabled"),
        "webhooks": form.text("webhooks") or "",
        "webhookEvents": [ALL_EVENTS] if ALL_EVENTS in events or not events else events,
        "webhooksCustomHeaders": parse_header_lines(form, "webhooksCustomHeaders"),
    }


@router.post("/config/webhooks")
async def webhooks_save(request: Request, session: AdminSession) -> Response:
    c = container_of(request)
    form = await read_form(request)
    echo = form.echo()
    try:
        update = SettingsUpdate.model_validate(webhook_update(form))
    except FieldError as exc:
        errors = {exc.field: exc.message}
        return await _webhook_page(request, session, status=400, values=echo, errors=errors)
    except ValidationError as exc:
        errors = field_errors(exc)
        return await _webhook_page(request, session, status=400, values=echo, errors=errors)
    if form.get("action") != "test":
        await c.settings.update(update)
        return await done(request, session, "/admin/config/webhooks", "Webhook settings saved.")
    url = update.webhooks or ""
    if not url:
        errors = {"webhooks": "Enter the URL to send the test event to"}
        return await _webhook_page(request, session, status=400, values=echo, errors=errors)
    stored = {
        name: await c.settings.get(name)
        for name in ("serviceUrl", "serviceSecret", "webhooksBlockPrivate")
    }
    cfg = payload.WebhookConfig.from_settings(
        {**stored, "webhooksEnabled": True, "webhooks": url,
         "webhooksCustomHeaders": update.model_dump()["webhooksCustomHeaders"]}
    )  # fmt: skip
    result = await send_test(url, cfg)
    return await _webhook_page(request, session, values=echo, test=result)
