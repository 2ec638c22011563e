"""HTML rendering of the admin pages: one Jinja2 environment (autoescape always on), the
context every page shares, and the response headers every page carries.

No template marks user data ``|safe``; values reach the page escaped. Pages are never cached and
never framed; the Content-Security-Policy allows only this server's own scripts and styles.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mailgate import __version__
from mailgate.services.admin_auth import Session

TEMPLATE_DIR = Path(__file__).parent / "templates"
MAX_JSON_SHOWN = 600  # characters of an event's data shown in a table cell

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _bytes(value: float) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _compact_json(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return shown if len(shown) <= MAX_JSON_SHOWN else shown[: MAX_JSON_SHOWN - 1] + "…"


def section_of(path: str) -> str:
    """The main navigation entry a page belongs to (``dashboard``, ``accounts``, ...)."""
    rest = path.removeprefix("/admin").strip("/")
    return rest.split("/", 1)[0] or "dashboard"


def _build_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = _duration
    env.filters["bytes"] = _bytes
    env.filters["compact_json"] = _compact_json
    return env


templates = _build_env()


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    session: Session | None = None,
    flash: dict[str, Any] | None = None,
    **context: Any,
) -> HTMLResponse:
    """The page ``template`` with the shared context; security headers set."""
    values: dict[str, Any] = {
        "version": __version__,
        "session": session,
        "csrf": session.csrf if session else context.pop("csrf", ""),
        "flash": flash,
        "path": request.url.path,
        "section": section_of(request.url.path),
        "now": time.time(),
        "values": {},
        "errors": {},
    }
    values.update(context)
    html = templates.get_template(template).render(**values)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
