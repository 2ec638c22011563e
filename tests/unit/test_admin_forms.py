"""Admin forms and pages: pydantic errors per field, form parsing, values echoed without
secrets, and escaping of everything a page shows."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mailgate.api.admin.forms import (
    FieldError,
    Form,
    field_errors,
    header_lines,
    page_number,
    parse_header_lines,
)
from mailgate.api.admin.render import SECURITY_HEADERS, section_of, templates
from mailgate.api.admin.settings import service_update, webhook_update
from mailgate.services.admin_auth import Session
from mailgate.services.inputs import AccountCreate
from mailgate.services.settings import SettingsUpdate

XSS = "<script>alert('x')</script>"


def test_union_errors_land_on_the_model_fields() -> None:
    with pytest.raises(ValidationError) as info:
        AccountCreate.model_validate(
            {
                "account": "a b",
                "imap": {"host": "h", "port": "abc", "tls": {"rejectUnauthorized": "zz"}},
            }
        )
    errors = field_errors(info.value)
    assert set(errors) == {"account", "imap.port", "imap.tls.rejectUnauthorized"}
    assert "valid integer" in errors["imap.port"]


def test_settings_errors_are_pydantics_messages() -> None:
    form = Form([("serviceUrl", "http://x"), ("resyncDelay", "0"), ("imapIndexer", "turbo")])
    with pytest.raises(ValidationError) as info:
        SettingsUpdate.model_validate(service_update(form))
    errors = field_errors(info.value)
    assert errors["resyncDelay"] == "Input should be greater than or equal to 1"
    assert "'full' or 'fast'" in errors["imapIndexer"]


def test_service_form_secret_is_write_only() -> None:
    assert "serviceSecret" not in service_update(Form([("serviceSecret", "")]))
    assert service_update(Form([("serviceSecret", "s3cret")]))["serviceSecret"] == "s3cret"
    cleared = service_update(Form([("serviceSecret", "x"), ("clearServiceSecret", "1")]))
    assert cleared["serviceSecret"] is None
    echoed = Form([("serviceSecret", "s3cret"), ("serviceUrl", "u"), ("_csrf", "t")])
    assert echoed.echo("serviceSecret") == {"serviceUrl": "u"}


def test_webhook_form_events_and_headers() -> None:
    form = Form(
        [
            ("webhooksEnabled", "1"),
            ("webhooks", "http://127.0.0.1:9/hook"),
            ("webhookEvents", "messageNew"),
            ("webhookEvents", "messageDeleted"),
            ("webhooksCustomHeaders", "X-One: 1\r\nX-Two:  two words \n\n"),
        ]
    )
    body = webhook_update(form)
    assert body["webhookEvents"] == ["messageNew", "messageDeleted"]
    assert body["webhooksCustomHeaders"] == [
        {"key": "X-One", "value": "1"},
        {"key": "X-Two", "value": "two words"},
    ]
    assert webhook_update(Form([("webhookEvents", "*"), ("webhookEvents", "x")]))[
        "webhookEvents"
    ] == ["*"]
    assert header_lines(body["webhooksCustomHeaders"]) == "X-One: 1\nX-Two: two words"
    with pytest.raises(FieldError) as info:
        parse_header_lines(Form([("h", "no colon here")]), "h")
    assert info.value.field == "h"


@pytest.mark.parametrize(("raw", "page"), [(None, 0), ("3", 3), ("-2", 0), ("x", 0)])
def test_page_numbers(raw: str | None, page: int) -> None:
    assert page_number(raw) == page


def test_sections() -> None:
    assert section_of("/admin") == "dashboard"
    assert section_of("/admin/") == "dashboard"
    assert section_of("/admin/config/webhooks") == "config"
    assert section_of("/admin/accounts/x") == "accounts"


def _render(name: str, **context: Any) -> str:
    session = Session("h", "csrf-token", 0.0)
    values: dict[str, Any] = {
        "version": "0",
        "session": session,
        "csrf": session.csrf,
        "flash": None,
        "path": "/admin/accounts",
        "section": "accounts",
        "now": 0,
        "values": {},
        "errors": {},
    }
    values.update(context)
    return templates.get_template(name).render(**values)


def test_account_list_escapes_stored_values() -> None:
    listing = {
        "total": 1,
        "pages": 1,
        "accounts": [
            {
                "account": "acc<b>",
                "name": XSS,
                "email": '"><img src=x onerror=alert(1)>',
                "type": "imap",
                "state": "connectError",
                "imapIndexer": "full",
                "lastError": {"response": XSS},
            }
        ],
    }
    html = _render(
        "accounts.html",
        listing=listing,
        query=XSS,
        state="",
        states=("connected",),
        page=0,
        prev_link=None,
        next_link=None,
        account_url=lambda a: "/admin/accounts/" + a,
    )
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_form_errors_and_values_are_escaped() -> None:
    html = _render(
        "config_service.html",
        values={"serviceUrl": '"><script>x()</script>', "resyncDelay": 0},
        errors={"resyncDelay": XSS},
        secret_set=False,
        path="/admin/config/service",
        section="config",
    )
    assert "<script>" not in html
    assert 'value="&#34;&gt;&lt;script&gt;x()&lt;/script&gt;"' in html
    assert 'name="_csrf" value="csrf-token"' in html


def test_pages_forbid_framing_and_foreign_scripts() -> None:
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert SECURITY_HEADERS["Cache-Control"] == "no-store"
