"""Account pages: the paged, searchable list; one account (state, indexing, mailboxes, recent
events, actions); adding an IMAP/SMTP account (verified first) or an OAuth2 one (consent flow).

Every action calls the same :class:`~mailgate.services.accounts.AccountService` method the
``/v1`` route calls.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from mailgate.api.admin.auth import AdminSession, admin_router, container_of, done, show
from mailgate.api.admin.forms import Form, field_errors, page_number, read_form
from mailgate.domain.account import AccountState
from mailgate.errors import ApiError, BackendError, BadRequest
from mailgate.runtime.container import Container
from mailgate.services.admin_overview import AdminOverview, percent
from mailgate.services.inputs import AccountCreate, FlushIn, ImapIn, SmtpIn, VerifyAccountIn
from mailgate.services.oauth2 import providers

router = admin_router()

PAGE_SIZE = 50  # accounts per list page
MAX_QUERY = 256  # characters of a search query
RECENT_EVENTS = 50  # events shown on an account page
MAILBOX_TIMEOUT = 8.0  # seconds to list an account's mailboxes before showing an error
STATES = tuple(s.value for s in AccountState if s is not AccountState.UNSET)
SECRET_FIELDS = ("imap.auth.pass", "smtp.auth.pass")


def account_url(account: str) -> str:
    return "/admin/accounts/" + quote(account, safe="")


@router.get("/accounts")
async def accounts_list(request: Request, session: AdminSession) -> Response:
    c = container_of(request)
    q = request.query_params
    query = (q.get("q") or "").strip()[:MAX_QUERY]
    state = q.get("state") or None
    if state not in STATES:
        state = None
    page = page_number(q.get("page"))
    listing = await c.account_service.list_accounts(
        page=page, page_size=PAGE_SIZE, state=state, query=query or None
    )

    def page_link(n: int) -> str:
        params = {k: v for k, v in (("q", query), ("state", state or "")) if v}
        params["page"] = str(n)
        return "/admin/accounts?" + urlencode(params)

    return await show(
        request,
        session,
        "accounts.html",
        listing=listing,
        query=query,
        state=state or "",
        states=STATES,
        page=page,
        prev_link=page_link(page - 1) if page > 0 else None,
        next_link=page_link(page + 1) if page + 1 < listing["pages"] else None,
        account_url=account_url,
    )


# --- add an account ------------------------------------------------------------------------------


async def _oauth_apps(c: Container) -> list[dict[str, Any]]:
    """Enabled OAuth2 apps whose accounts are added through user consent."""
    if c.oauth2 is None:
        return []
    listing = await c.oauth2.apps.list_apps(page=0, page_size=1000)
    out = []
    for app in listing["apps"]:
        try:
            provider = providers.provider_of(app)
        except BadRequest:
            continue
        if (
            app.get("enabled")
            and providers.grant_of(provider) is providers.Grant.AUTHORIZATION_CODE
        ):
            out.append(app)
    return out


async def _new_page(
    request: Request,
    session: AdminSession,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    oauth_values: dict[str, Any] | None = None,
    oauth_errors: dict[str, str] | None = None,
) -> Response:
    c = container_of(request)
    default_values = {"imap.port": "993", "imap.secure": "1", "imap.tls.rejectUnauthorized": "1",
                      "smtp.port": "587", "smtp.tls.rejectUnauthorized": "1"}  # fmt: skip
    return await show(
        request,
        session,
        "account_new.html",
        status=status,
        values=values if values is not None else default_values,
        errors=errors or {},
        oauth_values=oauth_values or {},
        oauth_errors=oauth_errors or {},
        apps=await _oauth_apps(c),
        default_indexer=str(await c.settings.get("imapIndexer") or "full"),
    )


@router.get("/accounts/new")
async def account_new_page(request: Request, session: AdminSession) -> Response:
    return await _new_page(request, session)


def _section(form: Form, prefix: str, *, fallback_auth: dict[str, Any] | None) -> dict[str, Any]:
    """The ``imap``/``smtp`` object of the request body from the form's fields."""
    section: dict[str, Any] = {
        "host": form.text(f"{prefix}.host"),
        "port": form.number(f"{prefix}.port"),
        "secure": form.checkbox(f"{prefix}.secure"),
        "tls": {"rejectUnauthorized": form.checkbox(f"{prefix}.tls.rejectUnauthorized")},
    }
    user = form.text(f"{prefix}.auth.user")
    password = form.get(f"{prefix}.auth.pass")
    if user or password:
        section["auth"] = {"user": user or "", "pass": password}
    elif fallback_auth is not None:
        section["auth"] = dict(fallback_auth)
    return section


def _account_body(form: Form) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``POST /v1/account`` body of the form, and the errors of required fields."""
    errors: dict[str, str] = {}
    imap = _section(form, "imap", fallback_auth=None)
    body: dict[str, Any] = {
        "account": form.text("account"),
        "name": form.text("name"),
        "email": form.text("email"),
        "imapIndexer": form.text("imapIndexer"),
        "imap": imap,
    }
    for field in ("imap.host", "imap.port", "imap.auth.user"):
        if not form.text(field):
            errors[field] = "Field required"
    if form.checkbox("smtp.enabled"):
        body["smtp"] = _section(form, "smtp", fallback_auth=imap.get("auth"))
        for field in ("smtp.host", "smtp.port"):
            if not form.text(field):
                errors[field] = "Field required"
    return {k: v for k, v in body.items() if v is not None}, errors


def _verify_errors(result: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for section in ("imap", "smtp"):
        outcome = result.get(section)
        if not isinstance(outcome, dict) or outcome.get("success"):
            continue
        message = str(outcome.get("error") or "Connection failed")
        if outcome.get("responseText"):
            message += f" ({outcome['responseText']})"
        label = section.upper()
        errors["_form"] = f"{label} check failed: {message}"
        code = str(outcome.get("code") or "")
        field = "auth.pass" if code in ("AUTHENTICATIONFAILED", "EAUTH") else "host"
        errors[f"{section}.{field}"] = message
    return errors


@router.post("/accounts/new")
async def account_create(request: Request, session: AdminSession) -> Response:
    c = container_of(request)
    form = await read_form(request)
    echo = form.echo(*SECRET_FIELDS)
    raw, errors = _account_body(form)
    try:
        body = AccountCreate.model_validate(raw)
    except ValidationError as exc:
        errors = {**field_errors(exc), **errors}
        return await _new_page(request, session, status=400, values=echo, errors=errors)
    if errors:
        return await _new_page(request, session, status=400, values=echo, errors=errors)
    imap = body.imap if isinstance(body.imap, ImapIn) else None
    smtp = body.smtp if isinstance(body.smtp, SmtpIn) else None
    result = await c.account_service.verify(VerifyAccountIn(imap=imap, smtp=smtp))
    errors = _verify_errors(result)
    if errors:
        return await _new_page(request, session, status=400, values=echo, errors=errors)
    try:
        created = await c.account_service.create(body)
    except ApiError as exc:
        errors = {"_form": exc.message}
        return await _new_page(request, session, status=exc.status_code, values=echo, errors=errors)
    account = str(created["account"])
    verb = "added" if created.get("state") == "new" else "updated"
    return await done(request, session, account_url(account), f"Account {account} {verb}.")


@router.post("/accounts/new/oauth2")
async def account_create_oauth2(request: Request, session: AdminSession) -> Response:
    """Start the consent flow of an OAuth2 app: the browser goes to the provider."""
    c = container_of(request)
    form = await read_form(request)
    back = str(request.base_url).rstrip("/") + "/admin/accounts"
    raw = {
        "account": form.text("account"),
        "name": form.text("name"),
        "email": form.text("email"),
        "oauth2": {"authorize": True, "provider": form.text("app"), "redirectUrl": back},
    }
    try:
        body = AccountCreate.model_validate({k: v for k, v in raw.items() if v is not None})
        reply = await c.account_service.create(body)
    except ValidationError as exc:
        return await _new_page(
            request, session, status=400, oauth_values=form.echo(), oauth_errors=field_errors(exc)
        )
    except ApiError as exc:
        return await _new_page(
            request,
            session,
            status=exc.status_code,
            oauth_values=form.echo(),
            oauth_errors={"_form": exc.message},
        )
    redirect = reply.get("redirect")
    if not isinstance(redirect, str):
        raise BadRequest("The OAuth2 application did not give an authorization URL")
    return RedirectResponse(redirect, status_code=303)


# --- one account ---------------------------------------------------------------------------------


async def _mailboxes(c: Container, account: str) -> tuple[list[dict[str, Any]], str | None]:
    try:
        async with asyncio.timeout(MAILBOX_TIMEOUT):
            listing = await c.mailbox_service.list_mailboxes(account, counters=True)
    except TimeoutError:
        return [], f"The mail server did not list the mailboxes within {MAILBOX_TIMEOUT:g} s"
    except BackendError as exc:
        detail = f"{exc} ({exc.server_response})" if exc.server_response else str(exc)
        return [], f"Could not list the mailboxes: {detail}"
    except ApiError as exc:
        return [], f"Could not list the mailboxes: {exc.message}"
    return list(listing.get("mailboxes", [])), None


@router.get("/accounts/{account}")
async def account_page(account: str, request: Request, session: AdminSession) -> Response:
    c = container_of(request)
    info = await c.account_service.info(account)
    overview = AdminOverview(c.redis, c.accounts, c.stats)
    indexed = await overview.indexed_paths(account)
    if info.get("type") == "sending":
        mailboxes: list[dict[str, Any]] = []
        mailbox_error: str | None = None
    else:
        mailboxes, mailbox_error = await _mailboxes(c, account)
    events = await c.events.recent(account, RECENT_EVENTS)
    indexing = info.get("indexing")
    progress = (
        percent(indexing["messages"]["done"], indexing["messages"]["total"]) if indexing else None
    )
    transient = info.get("state") in ("init", "connecting", "syncing") or (
        indexing is not None and not indexing["initialized"]
    )
    return await show(
        request,
        session,
        "account.html",
        info=info,
        account=account,
        account_path=account_url(account),
        mailboxes=mailboxes,
        mailbox_error=mailbox_error,
        indexed=indexed,
        events=events,
        progress=progress,
        autorefresh=transient,
    )


@router.post("/accounts/{account}/reconnect")
async def account_reconnect(account: str, request: Request, session: AdminSession) -> Response:
    await container_of(request).account_service.reconnect(account, True)
    return await done(request, session, account_url(account), "Reconnect requested.")


@router.post("/accounts/{account}/sync")
async def account_sync(account: str, request: Request, session: AdminSession) -> Response:
    await container_of(request).account_service.sync(account, True)
    return await done(request, session, account_url(account), "Sync requested.")


@router.post("/accounts/{account}/flush")
async def account_flush(account: str, request: Request, session: AdminSession) -> Response:
    form = await read_form(request)
    indexer = form.text("imapIndexer")
    try:
        body = FlushIn.model_validate({"flush": True, "imapIndexer": indexer})
    except ValidationError as exc:
        raise BadRequest(field_errors(exc).get("imapIndexer", "Invalid indexer")) from exc
    await container_of(request).account_service.flush(account, body)
    chosen = f" with the {indexer} indexer" if indexer else ""
    return await done(
        request, session, account_url(account), f"Index flushed; re-indexing{chosen}."
    )


@router.post("/accounts/{account}/delete")
async def account_delete(account: str, request: Request, session: AdminSession) -> Response:
    form = await read_form(request)
    if form.get("confirm") != account:
        raise BadRequest("Type the account id into the confirmation field to delete it.")
    await container_of(request).account_service.delete(account)
    return await done(request, session, "/admin/accounts", f"Account {account} deleted.")
