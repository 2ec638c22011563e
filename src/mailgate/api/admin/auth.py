"""Sign-in, sessions and CSRF for ``/admin``; the route class every admin route uses.

- The session cookie (``mg_admin``) is ``HttpOnly``, ``SameSite=Lax``, limited to ``/admin``,
  and ``Secure`` when the request came over HTTPS (directly or ``X-Forwarded-Proto: https``).
  API tokens never open ``/admin`` and this cookie never opens ``/v1`` (``api/auth.py`` reads
  only bearer tokens).
- CSRF: every form carries ``_csrf``. Signed in, it must equal the session's token; on the
  sign-in and first-password forms (no session yet) it must equal the ``mg_admin_pre`` cookie
  (double submit). Every POST is checked before its route runs.
- :class:`AdminRoute` turns the control-flow exceptions of this module (:class:`AdminRedirect`,
  :class:`CsrfFailed`) and the service errors (``ApiError``, ``BackendError``, ...) into pages,
  so an admin route never answers JSON.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from mailgate.api.admin.forms import FormTooLarge, read_form
from mailgate.api.admin.render import render
from mailgate.errors import ApiError, BackendError, MailgateError
from mailgate.runtime.container import Container
from mailgate.services.admin_auth import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    SESSION_MAX_AGE,
    AdminAuth,
    PasswordTooWeak,
    Session,
    csrf_matches,
)

log = structlog.get_logger("mailgate.admin")

SESSION_COOKIE = "mg_admin"
PRE_COOKIE = "mg_admin_pre"  # CSRF token of the forms shown before sign-in
COOKIE_PATH = "/admin"
PRE_COOKIE_AGE = 3600  # seconds the pre-sign-in CSRF cookie lives
MAX_NEXT = 2048  # characters of a ``next`` location kept across sign-in


class AdminRedirect(Exception):
    """Stop here and send the browser to ``location`` (303)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class CsrfFailed(Exception):
    """A POST without the right CSRF token."""


class AdminRoute(APIRoute):
    """Renders this module's control-flow exceptions and service errors as HTML pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except AdminRedirect as redirect:
                return RedirectResponse(redirect.location, status_code=303)
            except CsrfFailed:
                return _problem(request, 403, "The form was missing its security token or it "
                                "did not match. Reload the page and try again.")  # fmt: skip
            except FormTooLarge:
                return _problem(request, 413, "The submitted form is too large.")
            except ApiError as exc:
                return _problem(request, exc.status_code, exc.message)
            except BackendError as exc:
                detail = f"{exc} ({exc.server_response})" if exc.server_response else str(exc)
                return _problem(request, 502, f"The mail server failed: {detail}")
            except (MailgateError, RedisError) as exc:
                log.warning("admin page failed", path=request.url.path, error=str(exc))
                return _problem(request, 503, f"The service is not available: {exc}")

        return handler


def _problem(request: Request, status: int, message: str) -> Response:
    session = getattr(request.state, "admin_session", None)
    return render(
        request,
        "error.html",
        status=status,
        session=session if isinstance(session, Session) else None,
        title=f"Error {status}",
        message=message,
    )


def admin_router() -> APIRouter:
    """A router whose routes are :class:`AdminRoute` (sub-routers keep their route class)."""
    return APIRouter(route_class=AdminRoute, include_in_schema=False)


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def auth_of(request: Request) -> AdminAuth:
    return AdminAuth(container_of(request).redis)


def client_ip(request: Request) -> str:
    """The peer address (proxies' X-Forwarded-For is not trusted for the rate limit)."""
    return request.client.host if request.client else "unknown"


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",", 1)[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def safe_next(location: str | None) -> str:
    """A local ``/admin`` location to return to after sign-in (anything else: ``/admin``)."""
    if (
        location
        and len(location) <= MAX_NEXT
        and location.startswith("/admin")
        and not location.startswith(("//", "/\\"))
        and "\\" not in location
        and not any(ord(c) < 32 for c in location)
    ):
        return location
    return "/admin"


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=is_https(request)
    )


async def require_session(request: Request) -> Session:
    """The signed-in session; sends signed-out browsers to the sign-in page. Checks CSRF on
    every POST before the route runs."""
    auth = auth_of(request)
    session = await auth.session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        target = request.url.path
        if request.method == "GET" and request.url.query:
            target += "?" + request.url.query
        raise AdminRedirect("/admin/login?next=" + quote(safe_next(target), safe="/"))
    request.state.admin_session = session
    if request.method == "POST":
        form = await read_form(request)
        if not csrf_matches(session.csrf, form.get("_csrf") or None):
            log.warning("admin csrf check failed", path=request.url.path, ip=client_ip(request))
            raise CsrfFailed
    return session


AdminSession = Annotated[Session, Depends(require_session)]


async def flash_of(request: Request, session: Session) -> dict[str, Any] | None:
    return await auth_of(request).pop_flash(session)


async def flash(request: Request, session: Session, kind: str, message: str) -> None:
    """A message shown once on the next page (``kind``: ``ok`` or ``error``)."""
    await auth_of(request).flash(session, kind, message)


async def show(
    request: Request, session: Session, template: str, *, status: int = 200, **context: Any
) -> Response:
    """A signed-in page, with the flash message left by the previous step (if any)."""
    pending = await flash_of(request, session)
    return render(request, template, status=status, session=session, flash=pending, **context)


async def done(request: Request, session: Session, location: str, message: str) -> Response:
    """After a successful POST: leave a message and redirect (303) to ``location``."""
    await flash(request, session, "ok", message)
    return RedirectResponse(location, status_code=303)


# --- sign-in, first password, sign-out ----------------------------------------------------------

router = admin_router()


def _pre_token(request: Request) -> tuple[str, bool]:
    """The pre-sign-in CSRF token and whether it must be set as a cookie now."""
    existing = request.cookies.get(PRE_COOKIE, "")
    if 16 <= len(existing) <= 128:
        return existing, False
    return secrets.token_urlsafe(32), True


def _with_pre_cookie(response: Response, request: Request, token: str, new: bool) -> Response:
    if new:
        response.set_cookie(
            PRE_COOKIE,
            token,
            max_age=PRE_COOKIE_AGE,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=is_https(request),
        )
    return response


async def _check_pre_csrf(request: Request) -> None:
    form = await read_form(request)
    if not csrf_matches(request.cookies.get(PRE_COOKIE, ""), form.get("_csrf") or None):
        log.warning("admin csrf check failed", path=request.url.path, ip=client_ip(request))
        raise CsrfFailed


def _signin_page(
    request: Request, *, status: int = 200, error: str | None = None, next_url: str = "/admin"
) -> Response:
    token, new = _pre_token(request)
    response = render(
        request, "login.html", status=status, csrf=token, error=error, next_url=next_url
    )
    return _with_pre_cookie(response, request, token, new)


@router.get("/login")
async def login_page(request: Request) -> Response:
    auth = auth_of(request)
    if not await auth.has_password():
        raise AdminRedirect("/admin/setup")
    if await auth.session(request.cookies.get(SESSION_COOKIE)) is not None:
        raise AdminRedirect(safe_next(request.query_params.get("next")))
    return _signin_page(request, next_url=safe_next(request.query_params.get("next")))


@router.post("/login")
async def login(request: Request) -> Response:
    await _check_pre_csrf(request)
    form = await read_form(request)
    next_url = safe_next(form.get("next"))
    auth = auth_of(request)
    if not await auth.has_password():
        raise AdminRedirect("/admin/setup")
    ip = client_ip(request)
    limit = await auth.limit(ip)
    if limit.locked:
        wait = int(limit.retry_after) + 1
        response = _signin_page(
            request,
            status=429,
            error=f"Too many failed sign-ins from your address. Try again in {wait} seconds.",
            next_url=next_url,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    if not await auth.check_password(form.get("password")):
        failed = await auth.record_failure(ip)
        log.warning("admin sign-in failed", ip=ip, failures=failed.failures)
        message = "Wrong password."
        if failed.locked:
            message += f" Further tries are blocked for {int(failed.retry_after) + 1} seconds."
        return _signin_page(request, status=401, error=message, next_url=next_url)
    await auth.clear_failures(ip)
    session = await auth.create_session(ip)
    assert session.cookie is not None
    log.info("admin signed in", ip=ip)
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookie(response, request, session.cookie)
    return response


def _setup_page(
    request: Request, *, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    token, new = _pre_token(request)
    response = render(
        request,
        "setup.html",
        status=status,
        csrf=token,
        errors=errors or {},
        min_password=MIN_PASSWORD,
        max_password=MAX_PASSWORD,
    )
    return _with_pre_cookie(response, request, token, new)


@router.get("/setup")
async def setup_page(request: Request) -> Response:
    if await auth_of(request).has_password():
        raise AdminRedirect("/admin/login")
    return _setup_page(request)


@router.post("/setup")
async def setup(request: Request) -> Response:
    await _check_pre_csrf(request)
    auth = auth_of(request)
    if await auth.has_password():
        raise AdminRedirect("/admin/login")
    form = await read_form(request)
    password = form.get("password")
    if password != form.get("confirm"):
        return _setup_page(request, status=400, errors={"confirm": "The passwords differ"})
    try:
        created = await auth.set_first_password(password)
    except PasswordTooWeak as exc:
        return _setup_page(request, status=400, errors={"password": exc.message})
    if not created:  # someone else set it in the meantime
        raise AdminRedirect("/admin/login")
    ip = client_ip(request)
    session = await auth.create_session(ip)
    assert session.cookie is not None
    log.info("admin password set on first visit", ip=ip)
    response = RedirectResponse("/admin", status_code=303)
    set_session_cookie(response, request, session.cookie)
    return response


@router.post("/logout")
async def logout(request: Request, session: AdminSession) -> Response:
    await auth_of(request).end_session(session.hash)
    response = RedirectResponse("/admin/login", status_code=303)
    clear_session_cookie(response, request)
    return response
