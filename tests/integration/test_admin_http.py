"""The admin web UI over plain HTTP against the running service: first-visit and CLI passwords,
sign-in, cookies, CSRF, the API token / cookie separation, escaping, and the sign-in lockout.

Each test runs its own mailgate on its own Redis, so the admin password and settings it changes
touch no other test.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from mailgate.services.admin_auth import FIRST_LOCKOUT, FREE_FAILURES
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.integration

PASSWORD = "admin-password-1"
XSS_NAME = "<script>alert('owned')</script>"


def csrf_of(html: str) -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def set_password_cli(mg: MailgateProcess, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailgate", "password", "--stdin", "--data", str(mg.data)],
        env=mg.env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def sign_in(
    http: httpx.Client, password: str = PASSWORD, headers: dict[str, str] | None = None
) -> httpx.Response:
    page = http.get("/admin/login")
    assert page.status_code == 200, page.text[:500]
    return http.post(
        "/admin/login",
        data={"_csrf": csrf_of(page.text), "password": password, "next": "/admin/accounts"},
        headers=headers or {},
    )


@pytest.fixture
def admin_mailgate(
    mailgate_factory: Callable[..., MailgateProcess], redis_factory: Callable[[], RedisServer]
) -> MailgateProcess:
    return mailgate_factory(redis_url=redis_factory().url)


def test_first_visit_sets_the_password(admin_mailgate: MailgateProcess) -> None:
    with httpx.Client(base_url=admin_mailgate.base_url) as http:
        first = http.get("/admin")
        assert first.status_code == 303
        assert first.headers["location"] == "/admin/login?next=/admin"
        assert http.get("/admin/login").headers["location"] == "/admin/setup"
        page = http.get("/admin/setup")
        assert page.status_code == 200
        token = csrf_of(page.text)
        # a weak password is refused next to its field, nothing is stored
        weak = http.post("/admin/setup", data={"_csrf": token, "password": "x", "confirm": "x"})
        assert weak.status_code == 400 and "at least 8 characters" in weak.text
        done = http.post(
            "/admin/setup", data={"_csrf": token, "password": PASSWORD, "confirm": PASSWORD}
        )
        assert done.status_code == 303 and done.headers["location"] == "/admin"
        assert "mg_admin" in http.cookies
        assert http.get("/admin").status_code == 200
    with httpx.Client(base_url=admin_mailgate.base_url) as other:
        # once set, the setup page is closed to everybody
        assert other.get("/admin/setup").headers["location"] == "/admin/login"
        page = other.get("/admin/login")
        taken = other.post(
            "/admin/setup",
            data={
                "_csrf": csrf_of(page.text),
                "password": "another-pass",
                "confirm": "another-pass",
            },
        )
        assert taken.status_code == 303 and taken.headers["location"] == "/admin/login"
        assert sign_in(other, "another-pass").status_code == 401
        assert sign_in(other).status_code == 303


def test_sign_in_cookies_csrf_and_separation_from_the_api(
    admin_mailgate: MailgateProcess,
) -> None:
    mg = admin_mailgate
    result = set_password_cli(mg, PASSWORD)
    assert result.returncode == 0, result.stderr
    api = mg.client()
    # an API token opens nothing under /admin
    for headers, params in (
        ({"Authorization": f"Bearer {mg.token}"}, {}),
        ({}, {"access_token": mg.token}),
    ):
        resp = httpx.get(f"{mg.base_url}/admin/accounts", headers=headers, params=params)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/admin/login")
    # signed-out POSTs change nothing and go to the sign-in page
    before = api.get("/v1/settings", params={"resyncDelay": "true"}).json()["resyncDelay"]
    signed_out = httpx.post(f"{mg.base_url}/admin/config/service", data={"resyncDelay": "77"})
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/admin/login")

    with httpx.Client(base_url=mg.base_url) as http:
        # the sign-in form itself needs its CSRF token
        no_token = http.post("/admin/login", data={"password": PASSWORD})
        assert no_token.status_code == 403
        resp = sign_in(http)
        assert resp.status_code == 303 and resp.headers["location"] == "/admin/accounts"
        cookie = resp.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/admin" in cookie
        assert "Secure" not in cookie
        session_cookie = http.cookies["mg_admin"]

        # the cookie does not open /v1
        v1 = httpx.get(f"{mg.base_url}/v1/accounts", cookies={"mg_admin": session_cookie})
        assert v1.status_code == 401

        page = http.get("/admin/config/service")
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        token = csrf_of(page.text)
        form = {"serviceUrl": "http://127.0.0.1:3000", "imapIndexer": "full", "resyncDelay": "77"}
        # CSRF-less and wrong-token POSTs are refused and change nothing
        assert http.post("/admin/config/service", data=form).status_code == 403
        bad = http.post("/admin/config/service", data={**form, "_csrf": token + "x"})
        assert bad.status_code == 403
        assert (
            api.get("/v1/settings", params={"resyncDelay": "true"}).json()["resyncDelay"] == before
        )
        # invalid input: pydantic's message next to the field, typed values kept
        invalid = http.post(
            "/admin/config/service",
            data={**form, "_csrf": token, "resyncDelay": "0", "serviceUrl": "http://kept.test"},
        )
        assert invalid.status_code == 400
        assert "Input should be greater than or equal to 1" in invalid.text
        assert 'value="http://kept.test"' in invalid.text
        saved = http.post("/admin/config/service", data={**form, "_csrf": token})
        assert saved.status_code == 303
        assert api.get("/v1/settings", params={"resyncDelay": "true"}).json()["resyncDelay"] == 77

        # sign-out ends the session server-side
        out = http.post("/admin/logout", data={"_csrf": token})
        assert out.status_code == 303
        again = httpx.get(f"{mg.base_url}/admin", cookies={"mg_admin": session_cookie})
        assert again.status_code == 303

    with httpx.Client(base_url=mg.base_url) as http:
        resp = sign_in(http, headers={"X-Forwarded-Proto": "https"})
        assert resp.status_code == 303 and "Secure" in resp.headers["set-cookie"]
    api.close()


def test_stored_markup_is_escaped(admin_mailgate: MailgateProcess) -> None:
    mg = admin_mailgate
    assert set_password_cli(mg, PASSWORD).returncode == 0
    account = "xss<b>acct"
    with mg.client() as api:
        resp = api.post(
            "/v1/account",
            json={
                "account": account,
                "name": XSS_NAME,
                "email": "x@example.test",
                # nothing listens on port 1: the account fails to connect
                "imap": {"host": "127.0.0.1", "port": 1, "secure": False,
                         "auth": {"user": XSS_NAME, "pass": "p"}},
            },
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
    with httpx.Client(base_url=mg.base_url, timeout=30) as http:
        assert sign_in(http).status_code == 303
        for path in (
            "/admin/accounts",
            "/admin/accounts/xss%3Cb%3Eacct",
            "/admin/accounts?q=%3Cscript%3E",
        ):
            page = http.get(path)
            assert page.status_code == 200, (path, page.text[:1000])
            assert "<script>alert" not in page.text
            assert "<b>acct" not in page.text
        listing = http.get("/admin/accounts")
        assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in listing.text
        assert "xss&lt;b&gt;acct" in listing.text


def test_failed_sign_ins_lock_the_address_out(admin_mailgate: MailgateProcess) -> None:
    mg = admin_mailgate
    assert set_password_cli(mg, PASSWORD).returncode == 0
    with httpx.Client(base_url=mg.base_url) as http:
        for _ in range(FREE_FAILURES):
            assert sign_in(http, "wrong-password").status_code == 401
        locked = sign_in(http, "wrong-password")
        assert locked.status_code == 401 and "blocked" in locked.text
        refused = sign_in(http)  # even the right password waits out the lockout
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "mg_admin" not in http.cookies
        time.sleep(FIRST_LOCKOUT + 0.2)
        assert sign_in(http).status_code == 303
        assert "mg_admin" in http.cookies
    # the CLI ends open sessions when it changes the password
    cookie = http.cookies["mg_admin"]
    assert set_password_cli(mg, "short").returncode != 0
    assert set_password_cli(mg, "a-new-password").returncode == 0
    assert httpx.get(f"{mg.base_url}/admin", cookies={"mg_admin": cookie}).status_code == 303


def test_gateways_and_templates_pages(admin_mailgate: MailgateProcess) -> None:
    mg = admin_mailgate
    assert set_password_cli(mg, PASSWORD).returncode == 0
    with httpx.Client(base_url=mg.base_url) as http, mg.client() as api:
        assert sign_in(http).status_code == 303
        token = csrf_of(http.get("/admin/config/gateways/new").text)
        gateway = {"_csrf": token, "gateway": "relay1", "name": "Relay <1>", "host": "127.0.0.1",
                   "port": "99999", "user": "u", "pass": "gateway-secret"}  # fmt: skip
        bad = http.post("/admin/config/gateways/new", data=gateway)
        assert bad.status_code == 400
        assert "Input should be less than or equal to 65535" in bad.text
        assert "gateway-secret" not in bad.text and 'value="Relay &lt;1&gt;"' in bad.text
        assert (
            http.post("/admin/config/gateways/new", data={**gateway, "port": "2525"}).status_code
            == 303
        )
        assert api.get("/v1/gateway/relay1").json()["port"] == 2525
        edit = http.get("/admin/config/gateways/relay1")
        assert edit.status_code == 200 and "gateway-secret" not in edit.text
        saved = http.post(
            "/admin/config/gateways/relay1",
            data={
                "_csrf": token,
                "name": "Relay 2",
                "host": "127.0.0.1",
                "port": "2526",
                "user": "u",
            },
        )
        assert saved.status_code == 303
        stored = api.get("/v1/gateway/relay1").json()
        assert stored["name"] == "Relay 2" and stored["pass"] == "******"  # empty field kept it
        assert (
            http.post("/admin/config/gateways/relay1/delete", data={"_csrf": token}).status_code
            == 303
        )
        assert api.get("/v1/gateway/relay1").status_code == 404

        template = {"_csrf": token, "name": "Welcome", "format": "html",
                    "content.subject": "Hi {{name}}", "content.html": "<p>Hello</p>"}  # fmt: skip
        assert http.post("/admin/config/templates/new", data=template).status_code == 303
        listed = api.get("/v1/templates").json()["templates"]
        assert [t["name"] for t in listed] == ["Welcome"]
        page = http.get(f"/admin/config/templates/{listed[0]['id']}")
        assert "&lt;p&gt;Hello&lt;/p&gt;" in page.text
        missing = http.post("/admin/config/templates/new", data={**template, "name": ""})
        assert missing.status_code == 400 and 'value="Hi {{name}}"' in missing.text
