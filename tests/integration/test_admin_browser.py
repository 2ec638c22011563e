"""The admin web UI in a real browser: Debian's Chromium driven by Playwright for Python.

One walk through the UI as an admin would do it, against a mailgate of its own (own Redis),
the test Dovecot and the SMTP capture: first password, sign-out and sign-in, adding a Dovecot
account through the form until it is connected, switching the service's default indexer, a
flush with the other indexer, a signed test webhook to a receiver run here, an OAuth2 app (and
the start of its consent flow), issuing and revoking a token, cancelling a scheduled message,
and three things that must fail safely (a CSRF-less POST, a signed-out request, a ``<script>``
account name).

Chromium is never downloaded: the test uses ``/usr/bin/chromium`` (``apt-get install
chromium``; ``scripts/test`` installs it). A browser that does not start fails the test.
With ``MAILGATE_SCREENSHOTS=1`` the main pages are saved to ``docs/screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from mailgate.services.webhooks.signing import SIGNATURE_HEADER, sign
from tests.conftest import MailUser
from tests.integration.helpers import imap_account, wait_state
from tests.servers.dovecot import Dovecot
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer
from tests.servers.smtp import SmtpCapture

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-admin-pass"
SERVICE_SECRET = "webhook-signing-secret"
XSS_NAME = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
STEP_TIMEOUT = 15_000  # ms for one browser action or expectation
SCREENSHOTS = os.environ.get("MAILGATE_SCREENSHOTS") == "1"
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


# --- a webhook receiver -----------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            got.append(Received(self.path, dict(self.headers.items()), self.rfile.read(length)))
            reply = b'{"received": true, "note": "<b>not markup</b>"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks", got)
    server.shutdown()
    server.server_close()


# --- browser ----------------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright. Failing to start fails the test (never a skip)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield instance
        finally:
            instance.close()


def shot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)


def flash_says(page: Page, text: str) -> None:
    expect(page.locator(".notice.ok")).to_contain_text(text, timeout=STEP_TIMEOUT)


def reload_until(page: Page, selector: str, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = page.locator(selector)
        content = found.inner_text() if found.count() else ""
        if text in content:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} never showed {text!r} (last: {content!r})")
        time.sleep(0.4)
        page.reload()


def test_admin_ui_in_a_browser(
    browser: Browser,
    mailgate_factory: Callable[..., MailgateProcess],
    redis_factory: Callable[[], RedisServer],
    dovecot: Dovecot,
    user_factory: Callable[..., MailUser],
    smtp_capture: SmtpCapture,
    receiver: Receiver,
) -> None:
    mg = mailgate_factory(redis_url=redis_factory().url)
    base = mg.base_url
    api = mg.client()
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the JS confirm() of destructive buttons

    # --- first visit: set the password, then sign out and in again ---------------------------
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/admin/setup$"))
    page.fill("#f-password", PASSWORD)
    page.fill("#f-confirm", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.click("form.signout button")
    expect(page).to_have_url(re.compile(r"/admin/login$"))
    page.fill("#f-password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".notice.error")).to_contain_text("Wrong password")
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Dashboard")

    # --- add a Dovecot account through the form and watch it connect --------------------------
    user = user_factory("admin")
    first = f"ui-{uuid.uuid4().hex[:6]}"
    page.goto("/admin/accounts/new")
    form = page.locator("#imap-form")
    form.locator('[name="account"]').fill(first)
    form.locator('[name="name"]').fill("Admin UI account")
    form.locator('[name="email"]').fill(user.email)
    form.locator('[name="imap.host"]').fill(dovecot.host)
    form.locator('[name="imap.port"]').fill("70000")
    form.locator('[name="imap.secure"]').uncheck()
    form.locator('[name="imap.tls.rejectUnauthorized"]').uncheck()
    form.locator('[name="imap.auth.user"]').fill(user.name)
    form.locator('[name="imap.auth.pass"]').fill(user.password)
    form.locator("button[type=submit]").click()
    # a bad port: pydantic's message next to the field, the rest kept (the password is not)
    expect(page.locator("#err-imap\\.port")).to_have_text(
        "Input should be less than or equal to 65535"
    )
    expect(form.locator('[name="account"]')).to_have_value(first)
    expect(form.locator('[name="imap.tls.rejectUnauthorized"]')).not_to_be_checked()
    expect(form.locator('[name="imap.auth.pass"]')).to_have_value("")
    form.locator('[name="imap.port"]').fill(str(dovecot.imap_port))
    form.locator('[name="imap.auth.pass"]').fill(user.password)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(rf"/admin/accounts/{first}$"))
    flash_says(page, f"Account {first} added.")
    reload_until(page, "#account-state", "connected")
    expect(page.locator("table").filter(has_text="INBOX")).to_be_visible()
    expect(page.locator("#account-indexer")).to_have_text("full")
    shot(page, "account")

    # --- Configuration > Service: the default indexer, and a secret for webhook signatures ----
    page.click("nav.main >> text=Configuration")
    expect(page.locator("h1")).to_have_text("Service")
    page.select_option('[name="imapIndexer"]', "fast")
    page.fill('[name="serviceSecret"]', SERVICE_SECRET)
    page.fill('[name="resyncDelay"]', "0")
    page.click("#service-form button[type=submit]")
    expect(page.locator("#err-resyncDelay")).to_have_text(
        "Input should be greater than or equal to 1"
    )
    expect(page.locator('[name="imapIndexer"]')).to_have_value("fast")  # kept across the error
    page.fill('[name="resyncDelay"]', "60")
    page.fill('[name="serviceSecret"]', SERVICE_SECRET)
    page.click("#service-form button[type=submit]")
    flash_says(page, "Service settings saved.")
    assert SERVICE_SECRET not in page.content()
    shot(page, "config-service")
    user2 = user_factory("admin")
    second = f"ui2-{uuid.uuid4().hex[:6]}"
    body = imap_account(second, user2.name, user2.password, dovecot.host, dovecot.imap_port)
    assert api.post("/v1/account", json=body).status_code == 200
    page.goto(f"/admin/accounts/{second}")
    expect(page.locator("#account-indexer")).to_have_text("fast")

    # --- flush the first account with the other indexer ---------------------------------------
    page.goto(f"/admin/accounts/{first}")
    page.select_option("#flush-indexer", "fast")
    page.click("text=Flush index")
    flash_says(page, "re-indexing with the fast indexer")
    expect(page.locator("#account-indexer")).to_have_text("fast")
    reload_until(page, "#indexing-indexer", "fast")
    assert api.get(f"/v1/account/{first}").json()["imapIndexer"] == "fast"

    # --- webhooks: a signed test event to the receiver, then save -----------------------------
    page.goto("/admin/config/webhooks")
    page.fill('[name="webhooks"]', receiver.url)
    page.fill('[name="webhooksCustomHeaders"]', "X-From-Admin: yes")
    page.click("#webhook-test")
    expect(page.locator("#webhook-test-status")).to_have_text("HTTP 200")
    expect(page.locator("#webhook-test-body")).to_contain_text("<b>not markup</b>")
    expect(page.locator('[name="webhooks"]')).to_have_value(receiver.url)
    shot(page, "config-webhooks")
    assert len(receiver.requests) == 1
    sent = receiver.requests[0]
    envelope = json.loads(sent.body)
    assert envelope["event"] == "test" and envelope["data"]["nonce"]
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert headers[SIGNATURE_HEADER.lower()] == sign(sent.body, SERVICE_SECRET)
    assert headers["x-from-admin"] == "yes"
    page.check('[name="webhooksEnabled"]')
    page.click("#webhooks-form button[value=save]")
    flash_says(page, "Webhook settings saved.")
    saved = api.get("/v1/settings", params={"webhooks": "true", "webhooksEnabled": "true"}).json()
    assert saved == {"webhooks": receiver.url, "webhooksEnabled": True}

    # --- an OAuth2 app: created, secret never shown, consent flow starts ----------------------
    page.goto("/admin/config/oauth2/new")
    page.select_option('[name="provider"]', "generic")
    page.fill('[name="name"]', "Local IdP")
    page.fill('[name="clientId"]', "client-123")
    page.fill('[name="clientSecret"]', "client-secret-never-shown")
    page.fill('[name="authorizationUrl"]', "http://127.0.0.1:9/authorize")
    page.fill('[name="tokenUrl"]', "http://127.0.0.1:9/token")
    page.fill('[name="imap.host"]', dovecot.host)
    page.fill('[name="imap.port"]', str(dovecot.imap_port))
    page.click("#oauth2-form button[type=submit]")
    flash_says(page, "OAuth2 application created.")
    expect(page.locator("#oauth2-apps")).to_contain_text("Local IdP")
    page.click("#oauth2-apps >> text=Local IdP")
    assert "client-secret-never-shown" not in page.content()
    expect(page.locator('[name="clientSecret"]')).to_have_value("")
    page.route(
        "http://127.0.0.1:9/**",
        lambda route: route.fulfill(status=200, body="consent page", content_type="text/plain"),
    )
    page.goto("/admin/accounts/new")
    with page.expect_request("http://127.0.0.1:9/**") as authorize:
        page.locator("form.oauth-app").filter(has_text="Local IdP").locator("button").click()
    page.wait_for_url("http://127.0.0.1:9/**")
    expect(page.locator("body")).to_have_text("consent page")
    consent = [authorize.value.url]
    query = parse_qs(urlsplit(consent[0]).query)
    assert query["client_id"] == ["client-123"] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"][0].endswith("/oauth")

    # --- access tokens: issued once, then revoked ---------------------------------------------
    page.goto("/admin/tokens")
    page.fill('[name="description"]', "browser test token")
    page.click("#token-form button[type=submit]")
    token = page.locator("#issued-token").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token), token
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as as_token:
        assert as_token.get("/v1/accounts").status_code == 200
        # an API token does not open the UI
        assert as_token.get("/admin", follow_redirects=False).status_code == 303
    page.goto("/admin/tokens")
    assert token not in page.content()
    page.locator("#tokens tr", has_text="browser test token").get_by_role("button").click()
    flash_says(page, "Token revoked.")
    assert (
        httpx.get(f"{base}/v1/accounts", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )

    # --- outbox: a scheduled message, cancelled -----------------------------------------------
    host, port = smtp_capture.address
    sender = f"send-{uuid.uuid4().hex[:6]}"
    created = api.post(
        "/v1/account",
        json={"account": sender, "name": "Sender", "email": f"{sender}@example.test",
              "smtp": {"host": host, "port": port, "secure": False}},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    later = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 3600))
    queued = api.post(
        f"/v1/account/{sender}/submit",
        json={
            "to": [{"address": "later@example.test"}],
            "subject": "Scheduled <b>",
            "sendAt": later,
        },
    )
    assert queued.status_code == 200, queued.text
    queue_id = queued.json()["queueId"]
    page.goto("/admin/outbox")
    row = page.locator("#outbox tr", has_text=queue_id)
    expect(row).to_contain_text("Scheduled <b>")
    row.get_by_role("button", name="Cancel").click()
    flash_says(page, f"Message {queue_id} removed.")
    assert api.get(f"/v1/outbox/{queue_id}").status_code == 404

    # --- things that must fail safely ---------------------------------------------------------
    no_csrf = page.request.post(
        f"{base}/admin/config/service", form={"imapIndexer": "full"}, max_redirects=0
    )
    assert no_csrf.status == 403
    assert api.get("/v1/settings", params={"imapIndexer": "true"}).json()["imapIndexer"] == "fast"
    stranger = browser.new_context(base_url=base)
    other = stranger.new_page()
    other.goto("/admin/accounts")
    expect(other).to_have_url(re.compile(r"/admin/login\?next=/admin/accounts$"))
    stranger.close()
    evil = f"xss-{uuid.uuid4().hex[:6]}"
    body = {"account": evil, "name": XSS_NAME,
            "smtp": {"host": host, "port": port, "secure": False}}  # fmt: skip
    assert api.post("/v1/account", json=body).status_code == 200
    for path in ("/admin/accounts", f"/admin/accounts/{evil}", "/admin"):
        page.goto(path)
        assert page.evaluate("window.__xss") is None, path
    page.goto("/admin/accounts")
    expect(page.locator("table.accounts")).to_contain_text("<script>window.__xss = 1</script>")

    # --- the main pages, for the docs ---------------------------------------------------------
    wait_state(api, second, "connected")
    page.goto("/admin")
    expect(page.locator("h1")).to_have_text("Dashboard")
    shot(page, "dashboard")
    page.goto("/admin/accounts")
    shot(page, "accounts")
    context.close()
    api.close()
