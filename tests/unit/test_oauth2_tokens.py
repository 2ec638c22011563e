"""Pure parts of token handling: freshness, the lock's re-read rule, JWT assertions, rotation,
signed form links, error facts."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mailgate.errors import BadRequest, ConfigError
from mailgate.services.oauth2 import form
from mailgate.services.oauth2.client import (
    TokenResponse,
    decode_id_token,
    identity_email,
    token_request_facts,
)
from mailgate.services.oauth2.tokens import (
    REFRESH_MARGIN,
    apply_tokens,
    is_fresh,
    iso_from_epoch,
    jwt_assertion,
    login_user,
    usable_after_wait,
)

NOW = 1_700_000_000.0


def _oauth2(token: str | None = "at", expires_in: float | None = 3600.0) -> dict[str, object]:
    out: dict[str, object] = {"auth": {"user": "u@example.test"}}
    if token:
        out["accessToken"] = token
    if expires_in is not None:
        out["expires"] = iso_from_epoch(NOW + expires_in)
    return out


def test_freshness_uses_the_margin() -> None:
    assert is_fresh(_oauth2(expires_in=REFRESH_MARGIN + 5), NOW)
    assert not is_fresh(_oauth2(expires_in=REFRESH_MARGIN - 5), NOW)
    assert not is_fresh(_oauth2(expires_in=-10), NOW)
    assert is_fresh(_oauth2(expires_in=None), NOW)  # unknown expiry: let the server judge
    assert not is_fresh(_oauth2(token=None), NOW)


def test_waiter_takes_only_a_new_fresh_token() -> None:
    assert usable_after_wait(_oauth2("new"), "old", NOW)
    assert not usable_after_wait(_oauth2("old"), "old", NOW)  # the holder failed
    assert not usable_after_wait(_oauth2("new", expires_in=1), "old", NOW)
    assert usable_after_wait(_oauth2("new"), None, NOW)


def test_login_user_prefers_the_delegated_mailbox() -> None:
    assert login_user({"auth": {"user": "me@x"}}) == "me@x"
    assert login_user({"auth": {"user": "me@x", "delegatedUser": "shared@x"}}) == "shared@x"
    with pytest.raises(ConfigError):
        login_user({})


def test_rotated_refresh_token_replaces_the_old_one() -> None:
    stored = {"accessToken": "a1", "refreshToken": "r1", "auth": {"user": "u"}}
    rotated = apply_tokens(stored, TokenResponse("a2", "r2", 60.0, ["s1"], None), NOW)
    assert rotated["accessToken"] == "a2" and rotated["refreshToken"] == "r2"
    assert rotated["expires"] == iso_from_epoch(NOW + 60)
    assert rotated["scopes"] == ["s1"]
    kept = apply_tokens(stored, TokenResponse("a3", None, 60.0, None, None), NOW)
    assert kept["refreshToken"] == "r1"


def test_jwt_assertion_for_domain_wide_delegation() -> None:
    key = RSAKey.generate_key(2048)
    app = {
        "provider": "gmailService",
        "serviceClientEmail": "svc@project.iam.gserviceaccount.com",
        "serviceKey": key.as_pem(private=True).decode(),
    }
    token_url = "https://oauth2.googleapis.com/token"
    assertion = jwt_assertion(app, "user@corp.test", ["https://mail.google.com/"], token_url, NOW)
    decoded = jwt.decode(assertion, RSAKey.import_key(key.as_pem(private=False)))
    assert decoded.header["alg"] == "RS256"
    assert decoded.claims == {
        "iss": "svc@project.iam.gserviceaccount.com",
        "sub": "user@corp.test",
        "scope": "https://mail.google.com/",
        "aud": token_url,
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
    }
    with pytest.raises(ConfigError):
        jwt_assertion({**app, "serviceKey": "garbage"}, "u", [], token_url, NOW)


def test_token_request_facts_mask_the_secret() -> None:
    facts = token_request_facts(
        {
            "provider": "outlook",
            "clientId": "cid",
            "clientSecret": "abcdefghijklmnopqrstuvwxyz",
            "authority": "organizations",
        },
        "https://login/token",
        "refresh_token",
        ["s"],
    )
    assert facts == {
        "url": "https://login/token",
        "method": "post",
        "grant": "refresh_token",
        "provider": "outlook",
        "clientId": "cid",
        "clientSecret": "abcdef...wxyz",
        "authority": "organizations",
        "scopes": ["s"],
    }


def test_identity_from_id_token_and_userinfo() -> None:
    import base64
    import json

    payload = base64.urlsafe_b64encode(json.dumps({"email": "a@b.test"}).encode()).decode()
    assert identity_email(decode_id_token(f"x.{payload.rstrip('=')}.sig")) == "a@b.test"
    assert identity_email({"userPrincipalName": "u@corp.test", "sub": "1"}) == "u@corp.test"
    assert identity_email({"preferred_username": "plain"}) == "plain"
    assert identity_email({}) is None


def test_form_links_are_signed_and_expire() -> None:
    key = form.derive_key("secret")
    data, sig = form.sign({"account": "a", "exp": NOW + 60}, key)
    assert form.verify(data, sig, key, NOW)["account"] == "a"
    with pytest.raises(BadRequest, match="expired"):
        form.verify(data, sig, key, NOW + 61)
    with pytest.raises(BadRequest, match="not valid"):
        form.verify(data, sig, form.derive_key("other"), NOW)
    tampered, _ = form.sign({"account": "b", "exp": NOW + 60}, key)
    with pytest.raises(BadRequest, match="not valid"):
        form.verify(tampered, sig, key, NOW)
    with pytest.raises(BadRequest):
        form.verify("", "", key, time.time())
