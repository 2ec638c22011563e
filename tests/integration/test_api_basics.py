"""The service surface without mail servers: health, OpenAPI, tokens, settings, errors."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer, sync_client

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_health_and_openapi_are_public(mailgate: MailgateProcess) -> None:
    with httpx.Client(base_url=mailgate.base_url) as http:
        health = http.get("/health")
        assert health.status_code == 200
        assert health.json()["redis"] is True
        doc = http.get("/swagger.json").json()
        assert "/v1/account" in doc["paths"]
        assert "/v1/account/{account}/mailboxes" in doc["paths"]
        assert http.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("headers", "params", "code"),
    [
        ({}, {}, "MissingToken"),
        ({"Authorization": "Bearer " + "0" * 64}, {}, "InvalidToken"),
        ({}, {"access_token": "nope"}, "InvalidToken"),
    ],
)
def test_v1_needs_a_valid_token(
    mailgate: MailgateProcess, headers: dict[str, str], params: dict[str, str], code: str
) -> None:
    with httpx.Client(base_url=mailgate.base_url) as http:
        resp = http.get("/v1/accounts", headers=headers, params=params)
    assert resp.status_code == 401
    body = resp.json()
    assert body == {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": body["message"],
        "code": code,
    }


def test_token_in_query_string_works(mailgate: MailgateProcess) -> None:
    with httpx.Client(base_url=mailgate.base_url) as http:
        resp = http.get("/v1/accounts", params={"access_token": mailgate.token})
    assert resp.status_code == 200
    assert {"total", "page", "pages", "accounts"} <= set(resp.json())


def test_tokens_are_stored_hashed_and_manageable(
    mailgate: MailgateProcess, redis_server: RedisServer
) -> None:
    with mailgate.client() as http:
        created = http.post("/v1/tokens", json={"description": "ci token", "scopes": ["api"]})
        assert created.status_code == 200, created.text
        token, token_id = created.json()["token"], created.json()["id"]
        assert len(token) == 64 and int(token, 16) >= 0
        assert token_id == hashlib.sha256(token.encode()).hexdigest()

        listing = http.get("/v1/tokens").json()
        row = next(t for t in listing["tokens"] if t["id"] == token_id)
        assert row["description"] == "ci token" and row["scopes"] == ["api"]
        assert token not in str(listing)
        assert http.get(f"/v1/tokens/{token_id}").json()["id"] == token_id

    # the raw token is nowhere in Redis
    raw = sync_client(redis_server.url)
    try:
        for key in raw.scan_iter("mg:*"):
            if raw.type(key) == b"string":
                assert token.encode() not in (raw.get(key) or b"")
    finally:
        raw.close()

    with httpx.Client(
        base_url=mailgate.base_url, headers={"Authorization": f"Bearer {token}"}
    ) as h:
        assert h.get("/v1/accounts").status_code == 200
    with mailgate.client() as http:
        assert http.delete(f"/v1/tokens/{token_id}").json() == {"deleted": True}
        assert http.get(f"/v1/tokens/{token_id}").status_code == 404
    with httpx.Client(
        base_url=mailgate.base_url, headers={"Authorization": f"Bearer {token}"}
    ) as h:
        assert h.get("/v1/accounts").status_code == 401


def test_metrics_scope_token_cannot_use_api(mailgate: MailgateProcess) -> None:
    token = mailgate.issue_token("--scope", "metrics")
    with httpx.Client(
        base_url=mailgate.base_url, headers={"Authorization": f"Bearer {token}"}
    ) as h:
        resp = h.get("/v1/accounts")
    assert resp.status_code == 403
    assert resp.json()["code"] == "MissingScope"


def test_settings_round_trip_and_validation(mailgate: MailgateProcess) -> None:
    with mailgate.client() as http:
        resp = http.post(
            "/v1/settings",
            json={
                "imapIndexer": "fast",
                "resyncDelay": 30,
                "webhooks": "http://127.0.0.1:9/hook",
                "webhooksEnabled": True,
                "webhookEvents": ["messageNew"],
                "notifyText": True,
                "notifyTextSize": 1024,
                "notifyHeaders": ["List-ID"],
                "serviceUrl": "http://127.0.0.1:3000",
                "serviceSecret": "s3cret",
            },
        )
        assert resp.status_code == 200, resp.text
        assert set(resp.json()["updated"]) >= {"imapIndexer", "serviceSecret"}
        got = http.get(
            "/v1/settings",
            params={"imapIndexer": "true", "resyncDelay": "true", "serviceSecret": "true"},
        ).json()
        assert got == {"imapIndexer": "fast", "resyncDelay": 30, "serviceSecret": True}
        everything = http.get("/v1/settings").json()
        assert everything["webhookEvents"] == ["messageNew"]
        assert "messageNew" in everything["eventTypes"]
        assert "s3cret" not in str(everything)

        bad = http.post("/v1/settings", json={"imapIndexer": "slow"})
        assert bad.status_code == 400
        assert bad.json()["statusCode"] == 400
        assert bad.json()["fields"][0]["key"] == "imapIndexer"
        unknown = http.post("/v1/settings", json={"noSuchSetting": 1})
        assert unknown.status_code == 400
        # restore the default for other tests
        http.post("/v1/settings", json={"imapIndexer": "full"})


def test_unknown_account_is_404_with_code(mailgate: MailgateProcess) -> None:
    with mailgate.client() as http:
        for method, path in [
            ("GET", "/v1/account/nobody"),
            ("DELETE", "/v1/account/nobody"),
            ("GET", "/v1/account/nobody/mailboxes"),
        ]:
            resp = http.request(method, path)
            assert resp.status_code == 404, (method, path, resp.text)
            assert resp.json()["code"] == "AccountNotFound"


def test_bad_account_body_is_400(mailgate: MailgateProcess) -> None:
    with mailgate.client() as http:
        resp = http.post("/v1/account", json={"account": "x", "imap": {"port": "many"}})
        assert resp.status_code == 400
        assert resp.json()["fields"][0]["key"].startswith("imap")
        resp = http.post("/v1/account", json={"account": "x"})
        assert resp.status_code == 400


def test_stats_metrics_and_status(mailgate: MailgateProcess) -> None:
    with mailgate.client() as http:
        stats = http.get("/v1/stats").json()
        assert stats["version"] and isinstance(stats["accounts"], int)
        assert set(stats["connections"]) >= {"connected", "connectError", "authenticationError"}
        assert len(stats["nodes"]) >= 1
        # the API token has no metrics scope unless issued with it ("*" has every scope)
        api_only = mailgate.issue_token("--scope", "api")
        assert (
            http.get("/metrics", headers={"Authorization": f"Bearer {api_only}"}).status_code == 403
        )
    metrics_token = mailgate.issue_token("--scope", "metrics")
    with mailgate.client(token=metrics_token) as http:
        resp = http.get("/metrics")
        assert resp.status_code == 200
        assert 'mailgate_accounts{state="connected"}' in resp.text
        assert "mailgate_redis_ping_seconds" in resp.text
        assert 'mailgate_webhook_queue{state="waiting"}' in resp.text
        assert 'mailgate_outbox_jobs{state="waiting"}' in resp.text
        assert "mailgate_event_loop_lag_seconds" in resp.text
        assert http.get("/v1/accounts").status_code == 403  # metrics tokens do not open the API
    out = mailgate.cli("status").stdout.strip().splitlines()
    assert out and '"roles": "all"' in out[0]
