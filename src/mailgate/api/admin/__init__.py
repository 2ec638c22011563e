"""The admin web UI under ``/admin``: server-rendered pages (Jinja2), local static files.

Modules::

    auth       sessions, CSRF, sign-in rate limit; AdminRoute (errors as pages); sign-in pages
    forms      posted form parsing, pydantic errors per field
    render     the Jinja2 environment (autoescape on) and security headers
    dashboard  accounts by state, indexing, webhook queue, outbox, Redis
    accounts   list, one account, actions, add (IMAP/SMTP verified first, or OAuth2 consent)
    settings   Configuration > Service and > Webhooks (with the Test button)
    apps       Configuration > OAuth2 apps
    sending    Configuration > SMTP gateways and > Templates; the Outbox
    tokens     access tokens: list, issue (shown once), revoke

Wiring: :func:`install_admin` (called by ``api/app.py``) mounts the static files and the router
made by :func:`create_router`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from mailgate.api.admin import accounts, apps, auth, dashboard, sending, settings, tokens

PREFIX = "/admin"
STATIC_DIR = Path(__file__).parent / "static"


def create_router() -> APIRouter:
    """Every admin page, under ``/admin`` (left out of the OpenAPI document)."""
    router = APIRouter(include_in_schema=False)
    for module in (auth, dashboard, accounts, settings, apps, sending, tokens):
        router.include_router(module.router, prefix=PREFIX)
    return router


def install_admin(app: FastAPI) -> None:
    """Mount ``/admin/static`` and the admin pages on ``app``."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="admin-static")
    app.include_router(create_router())
