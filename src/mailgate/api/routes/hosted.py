"""Pages for end users' browsers: the OAuth2 redirect URI (``/oauth``) and the hosted sign-up
form (``/accounts/new``). Plain server-rendered HTML (Jinja2, no external assets); failures are
shown as a small page, never as JSON. No API token: ``/oauth`` is protected by the single-use
consent state, ``/accounts/new`` by the signed link."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from mailgate.api.deps import ContainerDep
from mailgate.errors import ApiError, BackendError, BadRequest, ConfigError
from mailgate.runtime.container import Container
from mailgate.services.oauth2.form import FORM_PATH, HostedForm, ImapSignup

MAX_FORM_BODY = 64 * 1024  # bytes of a posted sign-up form
DEFAULT_IMAP_PORT = 993

router = APIRouter(include_in_schema=False)
_templates = Environment(
    loader=PackageLoader("mailgate.api", "templates"),
    autoescape=select_autoescape(("html",)),
    enable_async=False,
)


async def _brand(c: Container) -> str:
    return str(await c.settings.get("pageBrandName") or "mailgate")


async def _page(c: Container, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(brand=await _brand(c), **values)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


async def _message(
    c: Container, title: str, message: str, *, error: bool, status: int = 200, **extra: Any
) -> HTMLResponse:
    return await _page(
        c, "message.html", status, title=title, message=message, error=error, **extra
    )


def _form(c: Container) -> HostedForm:
    if c.oauth2 is None or c.oauth2.form is None:
        raise ConfigError("The hosted form is not configured in this process")
    return c.oauth2.form


@router.get("/oauth")
async def oauth_callback(request: Request, c: ContainerDep) -> Response:
    q = request.query_params
    if c.oauth2 is None or c.oauth2.consent is None:
        raise ConfigError("OAuth2 services are not configured in this process")
    try:
        result = await c.oauth2.consent.finish(
            state=q.get("state"),
            code=q.get("code"),
            error=q.get("error"),
            error_description=q.get("error_description"),
        )
    except ApiError as exc:
        return await _message(c, "Sign-in failed", exc.message, error=True, status=400)
    except BackendError as exc:
        detail = f"{exc} ({exc.server_response})" if exc.server_response else str(exc)
        return await _message(c, "Sign-in failed", detail, error=True, status=502)
    if result.redirect:
        return RedirectResponse(result.redirect, status_code=302)
    return await _message(
        c, "Account connected", "Your account was added.", error=False, account=result.account
    )


async def _signup_page(
    c: Container,
    payload: dict[str, Any],
    data: str,
    sig: str,
    *,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    chosen = payload.get("type")
    apps = [] if chosen == "imap" else await _form(c).consent.apps.listed()
    return await _page(
        c,
        "signup.html",
        status,
        apps=apps,
        show_imap=chosen in (None, "imap"),
        data=data,
        sig=sig,
        action=FORM_PATH,
        error=error,
        values=values or {"email": payload.get("email") or payload.get("expectedEmail")},
    )


@router.get(FORM_PATH)
async def signup_form(request: Request, c: ContainerDep) -> Response:
    data = request.query_params.get("data", "")
    sig = request.query_params.get("sig", "")
    form = _form(c)
    try:
        payload = await form.open(data, sig)
        chosen = payload.get("type")
        if isinstance(chosen, str) and chosen != "imap":
            return RedirectResponse(await form.start_oauth(payload, chosen), status_code=302)
    except ApiError as exc:
        return await _message(c, "Cannot add the account", exc.message, error=True, status=400)
    return await _signup_page(c, payload, data, sig)


def _int(value: str | None, default: int | None) -> int | None:
    try:
        return int(value) if value else default
    except ValueError:
        return default


@router.post(FORM_PATH)
async def signup_submit(request: Request, c: ContainerDep) -> Response:
    raw = await request.body()
    if len(raw) > MAX_FORM_BODY:
        return await _message(c, "Cannot add the account", "Form too large", error=True, status=413)
    fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    data, sig = fields.get("data", ""), fields.get("sig", "")
    form = _form(c)
    try:
        payload = await form.open(data, sig)
    except ApiError as exc:
        return await _message(c, "Cannot add the account", exc.message, error=True, status=400)
    values = {
        k: v for k, v in fields.items() if not k.endswith("_pass") and k not in ("data", "sig")
    }
    try:
        if fields.get("provider"):
            return RedirectResponse(
                await form.start_oauth(payload, fields["provider"]), status_code=303
            )
        if not fields.get("imap_host") or not fields.get("imap_user") or not fields.get("email"):
            raise BadRequest("Email address, IMAP server and username are required")
        result = await form.imap_signup(
            payload,
            ImapSignup(
                email=fields["email"],
                name=fields.get("name", ""),
                imap_host=fields["imap_host"],
                imap_port=_int(fields.get("imap_port"), DEFAULT_IMAP_PORT) or DEFAULT_IMAP_PORT,
                imap_secure=bool(fields.get("imap_secure")),
                imap_user=fields["imap_user"],
                imap_pass=fields.get("imap_pass", ""),
                smtp_host=fields.get("smtp_host") or None,
                smtp_port=_int(fields.get("smtp_port"), None),
                smtp_secure=bool(fields.get("smtp_secure")),
                smtp_user=fields.get("smtp_user") or None,
                smtp_pass=fields.get("smtp_pass") or None,
                allow_invalid_certs=bool(fields.get("allow_invalid_certs")),
            ),
        )
    except ApiError as exc:
        return await _signup_page(
            c, payload, data, sig, error=exc.message, values=values, status=400
        )
    if result.redirect:
        return RedirectResponse(result.redirect, status_code=303)
    return await _message(
        c, "Account added", "Your account was added.", error=False, account=result.account
    )
