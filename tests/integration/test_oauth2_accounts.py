"""OAuth2 accounts end to end: apps, token refresh, consent, hosted form, oauth-token API.

The test authorization server (``tests/servers/oauth2.py``) issues its access tokens through the
same introspection registry Dovecot's ``passdb oauth2`` asks, so every XOAUTH2/OAUTHBEARER login
below is checked by Dovecot for real. Tokens live a few seconds; expiry is waited for, never
timed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest

from mailgate.domain.account import AccountRecord
from mailgate.services.oauth2.apps import AppService
from mailgate.services.oauth2.client import OAuth2Client, TokenResponse
from mailgate.services.oauth2.inputs import AppCreate
from mailgate.services.oauth2.tokens import TokenService, iso_from_epoch
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.crypto import SecretBox
from mailgate.store.redis import connect
from tests.conftest import MailUser
from tests.integration.helpers import account_events, wait_for, wait_state
from tests.servers.dovecot import Dovecot, TokenIntrospection
from tests.servers.mailgate import MailgateProcess
from tests.servers.oauth2 import OAuth2Server
from tests.servers.redis import RedisServer, sync_client
from tests.servers.smtp import SmtpCapture

pytestmark = pytest.mark.integration

SHORT_TTL = 5.0  # seconds an access token of these tests lives
LIVENESS = 60.0  # generous bound for "eventually"


@pytest.fixture(scope="module")
def oauth2_server(oauth2_introspection: TokenIntrospection) -> Iterator[OAuth2Server]:
    server = OAuth2Server(oauth2_introspection).start()
    yield server
    server.stop()


@pytest.fixture
def auth(oauth2_server: OAuth2Server) -> OAuth2Server:
    oauth2_server.access_ttl = SHORT_TTL
    oauth2_server.approve_as = None
    oauth2_server.deny = False
    return oauth2_server


def _imap_server(dovecot: Dovecot) -> dict[str, Any]:
    return {
        "host": dovecot.host,
        "port": dovecot.imap_port,
        "secure": False,
        "tls": {"rejectUnauthorized": False},
    }


def make_app(
    http: httpx.Client,
    auth: OAuth2Server,
    dovecot: Dovecot,
    *,
    provider: str = "gmail",
    **extra: Any,
) -> tuple[str, str, str]:
    """Register an app pointing at the test servers: ``(app id, client id, secret)``."""
    client_id, secret = auth.register_client()
    body = {
        "name": f"Test {provider}",
        "provider": provider,
        "enabled": True,
        "clientId": client_id,
        "clientSecret": secret,
        "imap": _imap_server(dovecot),
        **auth.endpoints(),
        **extra,
    }
    resp = http.post("/v1/oauth2", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"], client_id, secret


def set_service_url(http: httpx.Client, mailgate: MailgateProcess) -> None:
    resp = http.post("/v1/settings", json={"serviceUrl": mailgate.base_url})
    assert resp.status_code == 200, resp.text


def register_token_account(
    http: httpx.Client, auth: OAuth2Server, app_id: str, client_id: str, user: MailUser
) -> str:
    account = f"oa-{uuid.uuid4().hex[:8]}"
    access = auth.issue_access_token(user.name)
    body = {
        "account": account,
        "name": "OAuth2 test",
        "email": user.email,
        "imapIndexer": "fast",
        "oauth2": {
            "provider": app_id,
            "auth": {"user": user.name},
            "accessToken": access,
            "refreshToken": auth.issue_refresh_token(user.name, client_id),
            "expires": iso_from_epoch(time.time() + SHORT_TTL),
        },
    }
    resp = http.post("/v1/account", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"account": account, "state": "new"}
    return account


def _expires(http: httpx.Client, account: str) -> float:
    value = http.get(f"/v1/account/{account}").json()["oauth2"]["expires"]
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def test_app_crud_masks_secrets(
    mailgate: MailgateProcess, dovecot: Dovecot, auth: OAuth2Server, redis_server: RedisServer
) -> None:
    with mailgate.client() as http:
        app_id, client_id, secret = make_app(http, auth, dovecot, provider="outlook")
        info = http.get(f"/v1/oauth2/{app_id}").json()
        assert info["id"] == app_id and info["provider"] == "outlook"
        assert info["clientId"] == client_id and info["clientSecret"] == "******"
        assert info["authority"] == "common" and info["cloud"] == "global"
        assert info["tokenUrl"] == auth.token_url
        assert info["accounts"] == 0
        listing = http.get("/v1/oauth2", params={"pageSize": 1000}).json()
        listed = {a["id"]: a for a in listing["apps"]}
        assert listed[app_id]["clientSecret"] == "******"
        assert secret not in str(listing)

        resp = http.put(f"/v1/oauth2/{app_id}", json={"name": "Renamed", "authority": "contoso"})
        assert resp.json() == {"id": app_id, "updated": True}
        info = http.get(f"/v1/oauth2/{app_id}").json()
        assert info["name"] == "Renamed" and info["authority"] == "contoso"

        bad = http.post(
            "/v1/oauth2",
            json={
                "name": "x",
                "provider": "gmail",
                "clientId": "c",
                "clientSecret": "s",
                "tokenUrl": "http://auth.example.com/token",
            },
        )
        assert bad.status_code == 400 and bad.json()["code"] == "InputValidationError"
        assert http.post("/v1/oauth2", json={"name": "x", "provider": "nope"}).status_code == 400

        raw = sync_client(redis_server.url)
        try:
            stored = raw.get(keys.oauth_app(app_id))
            assert stored is not None and secret.encode() not in stored
        finally:
            raw.close()

        assert http.delete(f"/v1/oauth2/{app_id}").json() == {
            "id": app_id,
            "deleted": True,
            "accounts": 0,
        }
        assert http.get(f"/v1/oauth2/{app_id}").status_code == 404


@pytest.mark.cluster
def test_token_account_stays_connected_through_expiries(
    mailgate: MailgateProcess, dovecot: Dovecot, auth: OAuth2Server, mail_user: MailUser
) -> None:
    with mailgate.client() as http:
        app_id, client_id, _ = make_app(http, auth, dovecot)
        account = register_token_account(http, auth, app_id, client_id, mail_user)
        info = wait_state(http, account, "connected", timeout=LIVENESS)
        assert info["type"] == "oauth2"
        assert info["oauth2"]["accessToken"] == "******"
        assert info["oauth2"]["refreshToken"] == "******"
        # the API's own connections log in with a token too
        boxes = http.get(f"/v1/account/{account}/mailboxes")
        assert boxes.status_code == 200, boxes.text
        assert "INBOX" in [m["path"] for m in boxes.json()["mailboxes"]]

        for _ in range(3):
            before = auth.refresh_count(mail_user.name)
            expiry = _expires(http, account)
            wait_for(lambda e=expiry: time.time() > e + 0.2, timeout=LIVENESS, what="expiry")
            # an open session is not cut by Dovecot: drop it so the runner logs in again
            dovecot.kill_connections(mail_user.name)
            wait_for(
                lambda b=before: auth.refresh_count(mail_user.name) > b,
                timeout=LIVENESS,
                what="a token refresh",
            )
            wait_state(http, account, "connected", timeout=LIVENESS)
        # every refresh rotated the refresh token: later refreshes worked, so each was saved
        assert auth.refresh_count(mail_user.name) >= 3
        assert http.get(f"/v1/oauth2/{app_id}").json()["accounts"] == 1
        http.delete(f"/v1/account/{account}")


def test_revoked_grant_reports_authentication_error_once(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    auth: OAuth2Server,
    mail_user: MailUser,
    redis_server: RedisServer,
) -> None:
    with mailgate.client() as http:
        app_id, client_id, _ = make_app(http, auth, dovecot)
        account = register_token_account(http, auth, app_id, client_id, mail_user)
        wait_state(http, account, "connected", timeout=LIVENESS)
        auth.revoke_user(mail_user.name)
        expiry = _expires(http, account)
        wait_for(lambda: time.time() > expiry + 0.2, timeout=LIVENESS, what="expiry")
        dovecot.kill_connections(mail_user.name)
        info = wait_state(http, account, "authenticationError", timeout=LIVENESS)
        last = info["lastError"]
        assert last["serverResponseCode"] == "OauthRenewError"
        request = last["tokenRequest"]
        assert request["url"] == auth.token_url
        assert request["grant"] == "refresh_token"
        assert request["provider"] == "gmail"
        assert request["status"] == 400
        assert request["clientId"] == client_id
        assert request["response"]["error"] == "invalid_grant"
        assert "userFlag" in request

        def failures() -> int:
            return sum(
                1
                for r in auth.token_requests
                if r.client_id == client_id and r.error == "invalid_grant"
            )

        # ask for reconnects: each attempt fails again, the event is still reported once
        for _ in range(2):
            seen = failures()
            http.put(f"/v1/account/{account}/reconnect", json={"reconnect": True})
            wait_for(lambda s=seen: failures() > s, timeout=LIVENESS, what="another attempt")
        wait_state(http, account, "authenticationError", timeout=LIVENESS)
        events = [
            e
            for e in account_events(redis_server.url, account)
            if e["event"] == "authenticationError"
        ]
        assert len(events) == 1
        assert events[0]["data"]["tokenRequest"]["grant"] == "refresh_token"
        http.delete(f"/v1/account/{account}")


def test_service_account_jwt_bearer_logs_in(
    mailgate: MailgateProcess, dovecot: Dovecot, auth: OAuth2Server, mail_user: MailUser
) -> None:
    email, pem = auth.register_service_account()
    with mailgate.client() as http:
        resp = http.post(
            "/v1/oauth2",
            json={
                "name": "Workspace",
                "provider": "gmailService",
                "enabled": True,
                "serviceClient": "1234567890",
                "serviceClientEmail": email,
                "serviceKey": pem,
                "tokenUrl": auth.token_url,
                "imap": _imap_server(dovecot),
            },
        )
        assert resp.status_code == 200, resp.text
        app_id = resp.json()["id"]
        info = http.get(f"/v1/oauth2/{app_id}").json()
        assert info["serviceKey"] == "******" and "PRIVATE KEY" not in str(info)
        check = http.post(f"/v1/oauth2/{app_id}/verify", json={"account": mail_user.name}).json()
        assert check["ok"] is True, check
        account = f"svc-{uuid.uuid4().hex[:8]}"
        resp = http.post(
            "/v1/account",
            json={
                "account": account,
                "imapIndexer": "fast",
                "oauth2": {"provider": app_id, "auth": {"user": mail_user.name}},
            },
        )
        assert resp.status_code == 200, resp.text
        wait_state(http, account, "connected", timeout=LIVENESS)
        assert any(
            r.grant.endswith("jwt-bearer") and r.user == mail_user.name and r.status == 200
            for r in auth.token_requests
        )
        http.delete(f"/v1/account/{account}")


def _follow(url: str, *, until: str) -> tuple[httpx.Response, list[str]]:
    """Follow redirects like a browser, stopping before leaving for ``until``; returns the last
    response and every URL visited."""
    visited: list[str] = []
    with httpx.Client(timeout=30.0) as browser:
        while True:
            visited.append(url)
            resp = browser.get(url)
            location = resp.headers.get("location")
            if resp.status_code not in (302, 303) or not location:
                return resp, visited
            url = str(httpx.URL(url).join(location))
            if url.startswith(until):
                visited.append(url)
                return resp, visited


def test_consent_flow_end_to_end(
    mailgate: MailgateProcess, dovecot: Dovecot, auth: OAuth2Server, mail_user: MailUser
) -> None:
    done = "https://app.example.test/done"
    with mailgate.client() as http:
        set_service_url(http, mailgate)
        app_id, _, _ = make_app(http, auth, dovecot)
        auth.approve_as = mail_user.name
        account = f"consent-{uuid.uuid4().hex[:8]}"
        resp = http.post(
            "/v1/account",
            json={
                "account": account,
                "name": "Consent",
                "imapIndexer": "fast",
                "oauth2": {"authorize": True, "provider": app_id, "redirectUrl": done + "?x=1"},
            },
        )
        assert resp.status_code == 200, resp.text
        redirect = resp.json()["redirect"]
        assert redirect.startswith(auth.authorize_url)
        query = parse_qs(urlsplit(redirect).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["redirect_uri"] == [f"{mailgate.base_url}/oauth"]

        _, visited = _follow(redirect, until=done)
        final = urlsplit(visited[-1])
        assert f"{final.scheme}://{final.netloc}{final.path}" == done
        assert parse_qs(final.query) == {"x": ["1"], "account": [account], "state": ["new"]}

        info = wait_state(http, account, "connected", timeout=LIVENESS)
        assert info["oauth2"]["auth"]["user"] == mail_user.name
        assert info["email"] == mail_user.name
        assert info["oauth2"]["refreshToken"] == "******"

        # the state is single-use
        callback = next(u for u in visited if u.startswith(f"{mailgate.base_url}/oauth"))
        replay = httpx.get(callback)
        assert replay.status_code == 400
        assert "expired or was already used" in replay.text
        assert replay.headers["content-type"].startswith("text/html")
        http.delete(f"/v1/account/{account}")


def test_consent_rejects_unexpected_email(
    mailgate: MailgateProcess, dovecot: Dovecot, auth: OAuth2Server, mail_user: MailUser
) -> None:
    with mailgate.client() as http:
        set_service_url(http, mailgate)
        app_id, _, _ = make_app(http, auth, dovecot)
        auth.approve_as = mail_user.name
        account = f"consent-{uuid.uuid4().hex[:8]}"
        resp = http.post(
            "/v1/account",
            json={
                "account": account,
                "expectedEmail": "someone.else@example.test",
                "oauth2": {"authorize": True, "provider": app_id},
            },
        )
        page, _ = _follow(resp.json()["redirect"], until="https://never")
        assert page.status_code == 400
        assert "someone.else@example.test" in page.text and mail_user.name in page.text
        assert http.get(f"/v1/account/{account}").status_code == 404

        auth.deny = True
        resp = http.post(
            "/v1/account",
            json={"account": account, "oauth2": {"authorize": True, "provider": app_id}},
        )
        page, _ = _follow(resp.json()["redirect"], until="https://never")
        assert page.status_code == 400 and "access_denied" in page.text
        assert http.get(f"/v1/account/{account}").status_code == 404


def _form_post(url: str, fields: dict[str, str]) -> httpx.Response:
    with httpx.Client(timeout=60.0) as browser:
        return browser.post(url, data=fields)


def test_hosted_form_imap_signup(
    mailgate: MailgateProcess, dovecot: Dovecot, user_factory: Callable[..., MailUser]
) -> None:
    user = user_factory()
    done = "https://app.example.test/added"
    with mailgate.client() as http:
        set_service_url(http, mailgate)
        account = f"form-{uuid.uuid4().hex[:8]}"
        resp = http.post(
            "/v1/authentication/form",
            json={"account": account, "name": "Form user", "redirectUrl": done, "type": "imap"},
        )
        assert resp.status_code == 200, resp.text
        link = resp.json()["url"]
        assert link.startswith(f"{mailgate.base_url}/accounts/new?")
        page = httpx.get(link)
        assert page.status_code == 200 and 'name="imap_host"' in page.text
        params = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}

        tampered = httpx.get(link.replace("sig=", "sig=x"))
        assert tampered.status_code == 400

        fields = {
            "data": params["data"],
            "sig": params["sig"],
            "email": user.email,
            "imap_host": dovecot.host,
            "imap_port": str(dovecot.imap_port),
            "imap_user": user.name,
            "imap_pass": "wrong-password",
            "allow_invalid_certs": "1",
        }
        refused = _form_post(f"{mailgate.base_url}/accounts/new", fields)
        assert refused.status_code == 400 and "IMAP check failed" in refused.text
        assert "wrong-password" not in refused.text
        assert http.get(f"/v1/account/{account}").status_code == 404

        fields["imap_pass"] = user.password
        added = _form_post(f"{mailgate.base_url}/accounts/new", fields)
        assert added.status_code == 303, added.text
        location = urlsplit(added.headers["location"])
        assert parse_qs(location.query) == {"account": [account], "state": ["new"]}
        info = wait_state(http, account, "connected", timeout=LIVENESS)
        assert info["name"] == "Form user" and info["email"] == user.email
        http.delete(f"/v1/account/{account}")


def test_hosted_form_oauth_signup(
    mailgate: MailgateProcess, dovecot: Dovecot, auth: OAuth2Server, mail_user: MailUser
) -> None:
    with mailgate.client() as http:
        set_service_url(http, mailgate)
        app_id, _, _ = make_app(http, auth, dovecot, title="Test Mail")
        auth.approve_as = mail_user.name
        account = f"form-{uuid.uuid4().hex[:8]}"
        link = http.post("/v1/authentication/form", json={"account": account}).json()["url"]
        page = httpx.get(link)
        assert page.status_code == 200 and f'value="{app_id}"' in page.text
        params = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
        chosen = _form_post(
            f"{mailgate.base_url}/accounts/new",
            {"data": params["data"], "sig": params["sig"], "provider": app_id},
        )
        assert chosen.status_code == 303
        assert chosen.headers["location"].startswith(auth.authorize_url)
        result, _ = _follow(chosen.headers["location"], until="https://never")
        assert result.status_code == 200 and "Account connected" in result.text
        wait_state(http, account, "connected", timeout=LIVENESS)
        http.delete(f"/v1/account/{account}")


def test_oauth_token_api_off_and_on(
    mailgate: MailgateProcess, dovecot: Dovecot, auth: OAuth2Server, mail_user: MailUser
) -> None:
    auth.access_ttl = 600.0
    with mailgate.client() as http:
        app_id, client_id, _ = make_app(http, auth, dovecot)
        account = register_token_account(http, auth, app_id, client_id, mail_user)
        off = http.get(f"/v1/account/{account}/oauth-token")
        assert off.status_code == 403, off.text
        try:
            assert http.post("/v1/settings", json={"enableOAuthTokensApi": True}).status_code == 200
            first = http.get(f"/v1/account/{account}/oauth-token")
            assert first.status_code == 200, first.text
            body = first.json()
            assert body["account"] == account and body["user"] == mail_user.name
            assert body["provider"] == "gmail" and body["app"] == app_id
            assert auth.introspection.lookup(body["accessToken"]) == mail_user.name
            again = http.get(f"/v1/account/{account}/oauth-token").json()
            assert again["accessToken"] == body["accessToken"] and again["cached"] is True
        finally:
            http.post("/v1/settings", json={"enableOAuthTokensApi": False})
        http.delete(f"/v1/account/{account}")


# ---- the refresh lock, two "processes" against one Redis ---------------------------------


class SlowClient(OAuth2Client):
    """Counts token requests; each takes a while, so a second refresher would overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def token(self, app: Any, grant: str, form: dict[str, str], **kw: Any) -> TokenResponse:
        self.calls += 1
        await asyncio.sleep(0.3)
        n = self.calls
        return TokenResponse(f"access-{n}", f"refresh-{n}", 3600.0, None, None)


@pytest.mark.cluster
async def test_refresh_lock_lets_one_process_refresh(
    redis_factory: Callable[[], RedisServer],
) -> None:
    client = connect(redis_factory().url)  # private: the session Redis holds other secrets
    box = SecretBox("lock-test-secret")
    try:
        store = AccountStore(client, box)
        apps = AppService(client, box, store)
        created = await apps.create(
            AppCreate(
                name="lock",
                provider="generic",
                clientId="c",
                clientSecret="s",
                authorizationUrl="http://127.0.0.1:9/authorize",
                tokenUrl="http://127.0.0.1:9/token",
            )
        )
        account = f"lock-{uuid.uuid4().hex[:8]}"
        await store.save(
            msgspec.convert(
                {
                    "account": account,
                    "oauth2": {
                        "provider": created["id"],
                        "auth": {"user": "u"},
                        "accessToken": "stale",
                        "refreshToken": "r0",
                        "expires": iso_from_epoch(time.time() - 1),
                    },
                },
                AccountRecord,
            )
        )
        one, two = SlowClient(), SlowClient()
        first = TokenService(client, store, apps, one)
        second = TokenService(client, store, apps, two)
        results = await asyncio.gather(first.access_token(account), second.access_token(account))
        assert one.calls + two.calls == 1
        assert results[0] == results[1] == ("u", "access-1")
        record = await store.get(account)
        assert record is not None and record.oauth2 is not None
        assert record.oauth2["refreshToken"] == "refresh-1"
        assert await client.exists(keys.oauth_lock(account)) == 0
        # both logins refused the same token at once: the loser reuses the winner's new token
        results = await asyncio.gather(
            first.access_token(account, refused="access-1"),
            second.access_token(account, refused="access-1"),
        )
        assert one.calls + two.calls == 2
        assert results[0] == results[1]
        await store.delete(account)
        await apps.delete(created["id"])
    finally:
        await client.aclose()


def test_refused_token_is_refreshed_once_and_login_retried(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    auth: OAuth2Server,
    mail_user: MailUser,
    redis_server: RedisServer,
) -> None:
    """A token we believe valid (expiry an hour away) but the server refuses: one forced
    refresh, then the login succeeds."""
    with mailgate.client() as http:
        app_id, client_id, _ = make_app(http, auth, dovecot)
        account = f"oa-{uuid.uuid4().hex[:8]}"
        access = auth.issue_access_token(mail_user.name, ttl=3600)
        auth.revoke(access)  # revoked early, behind our back
        body = {
            "account": account,
            "imapIndexer": "fast",
            "oauth2": {
                "provider": app_id,
                "auth": {"user": mail_user.name},
                "accessToken": access,
                "refreshToken": auth.issue_refresh_token(mail_user.name, client_id),
                "expires": iso_from_epoch(time.time() + 3600),
            },
        }
        assert http.post("/v1/account", json=body).status_code == 200
        wait_state(http, account, "connected", timeout=LIVENESS)
        assert auth.refresh_count(mail_user.name) >= 1
        events = [e["event"] for e in account_events(redis_server.url, account)]
        assert "authenticationSuccess" in events and "authenticationError" not in events
        http.delete(f"/v1/account/{account}")


async def test_smtp_xoauth2_with_a_refreshed_token(
    redis_factory: Callable[[], RedisServer],
    dovecot: Dovecot,
    auth: OAuth2Server,
    mail_user: MailUser,
    smtp_capture: SmtpCapture,
) -> None:
    """TokenService.smtp_config + SmtpSender: XOAUTH2 to Dovecot's submission, checked for real
    (the outbox does not call smtp_config yet: see the OAuth2 notes for the sending service)."""
    from mailgate.backends.smtp.sender import Envelope, SmtpSender
    from mailgate.domain.account import SmtpConfig, TlsOptions

    client = connect(redis_factory().url)  # private: the session Redis holds other secrets
    box = SecretBox("smtp-test-secret")
    try:
        store = AccountStore(client, box)
        apps = AppService(client, box, store)
        client_id, secret = auth.register_client()
        app_id = (
            await apps.create(
                AppCreate(
                    name="smtp",
                    provider="generic",
                    clientId=client_id,
                    clientSecret=secret,
                    authorizationUrl=auth.authorize_url,
                    tokenUrl=auth.token_url,
                )
            )
        )["id"]
        account = f"smtp-{uuid.uuid4().hex[:8]}"
        record = msgspec.convert(
            {
                "account": account,
                "oauth2": {
                    "provider": app_id,
                    "auth": {"user": mail_user.name},
                    "refreshToken": auth.issue_refresh_token(mail_user.name, client_id),
                },
            },
            AccountRecord,
        )
        await store.save(record)
        tokens = TokenService(client, store, apps)
        cfg = SmtpConfig(
            host=dovecot.host,
            port=dovecot.submission_port,
            secure=False,
            tls=TlsOptions(reject_unauthorized=False),
        )
        sender = SmtpSender(await tokens.smtp_config(record, cfg))

        async def commit() -> None:
            return None

        raw = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: xoauth2\r\n\r\nhi\r\n"
        try:
            result = await sender.send(
                Envelope("a@example.test", ("b@example.test",)), raw, commit=commit
            )
        finally:
            await sender.close()
        assert result.code == 250
        assert any(b"Subject: xoauth2" in m.data for m in smtp_capture.messages)
        await store.delete(account)
        await apps.delete(app_id)
    finally:
        await client.aclose()


def test_outbox_sends_with_xoauth2_for_oauth2_accounts(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    auth: OAuth2Server,
    mail_user: MailUser,
    smtp_capture: SmtpCapture,
) -> None:
    """The outbox logs in to Dovecot's submission with a (refreshed) token, not a password."""
    smtp = {
        "host": dovecot.host,
        "port": dovecot.submission_port,
        "secure": False,
        "tls": {"rejectUnauthorized": False},
    }
    with mailgate.client() as http:
        app_id, client_id, _ = make_app(http, auth, dovecot, smtp=smtp)
        account = register_token_account(http, auth, app_id, client_id, mail_user)
        wait_state(http, account, "connected", timeout=LIVENESS)
        resp = http.post(
            f"/v1/account/{account}/submit",
            json={
                "from": {"address": mail_user.email},
                "to": [{"address": "someone@example.org"}],
                "subject": "sent with xoauth2",
                "text": "hello",
            },
        )
        assert resp.status_code == 200, resp.text
        smtp_capture.wait_for(
            1, timeout=30, predicate=lambda m: b"Subject: sent with xoauth2" in m.data
        )
        http.delete(f"/v1/account/{account}")
