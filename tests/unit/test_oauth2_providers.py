"""OAuth2 provider rules: endpoints per cloud/authority, scopes, overrides, URL checks, masking."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from mailgate.errors import BadRequest
from mailgate.services.oauth2 import providers
from mailgate.services.oauth2.apps import MASK, app_view, validate_app
from mailgate.services.oauth2.consent import authorization_url, with_query
from mailgate.services.oauth2.providers import Provider


@pytest.mark.parametrize(
    ("cloud", "authority", "login"),
    [
        (None, None, "https://login.microsoftonline.com/common/oauth2/v2.0"),
        ("global", "organizations", "https://login.microsoftonline.com/organizations/oauth2/v2.0"),
        ("gcc-high", "contoso.us", "https://login.microsoftonline.us/contoso.us/oauth2/v2.0"),
        ("dod", "consumers", "https://login.microsoftonline.us/consumers/oauth2/v2.0"),
        ("china", "common", "https://login.chinacloudapi.cn/common/oauth2/v2.0"),
    ],
)
def test_outlook_endpoints_follow_cloud_and_authority(
    cloud: str | None, authority: str | None, login: str
) -> None:
    app = {"provider": "outlook", "cloud": cloud, "authority": authority}
    ends = providers.endpoints(app)
    assert ends.authorization_url == f"{login}/authorize"
    assert ends.token_url == f"{login}/token"


def test_outlook_scopes_per_cloud_and_base() -> None:
    imap = providers.scopes({"provider": "outlook"})
    assert imap == [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ]
    gcc = providers.scopes({"provider": "outlook", "cloud": "gcc-high"})
    assert gcc[0] == "https://outlook.office365.us/IMAP.AccessAsUser.All"
    api = providers.scopes({"provider": "outlook", "baseScopes": "api"})
    assert "https://graph.microsoft.com/Mail.ReadWrite" in api
    service = providers.scopes(
        {"provider": "outlookService", "authority": "tenant-1", "cloud": "china"}
    )
    assert service == ["https://partner.outlook.cn/.default"]


def test_gmail_scopes_extra_skip_and_consent_identity() -> None:
    app = {"provider": "gmail"}
    assert providers.scopes(app) == ["https://mail.google.com/"]
    assert providers.scopes({"provider": "gmail", "baseScopes": "api"}) == [
        "https://www.googleapis.com/auth/gmail.modify"
    ]
    consent = providers.scopes(app, consent=True)
    assert consent[0] == "https://mail.google.com/" and "openid" in consent
    tuned = {
        "provider": "gmail",
        "extraScopes": ["https://www.googleapis.com/auth/calendar", "https://mail.google.com/"],
        "skipScopes": ["openid"],
    }
    assert providers.scopes(tuned, consent=True) == [
        "https://mail.google.com/",
        "email",
        "https://www.googleapis.com/auth/calendar",
    ]


def test_overrides_win_over_defaults() -> None:
    app = {
        "provider": "gmail",
        "authorizationUrl": "http://127.0.0.1:9/authorize",
        "tokenUrl": "http://127.0.0.1:9/token",
        "apiUrl": "http://127.0.0.1:9/gmail",
    }
    ends = providers.endpoints(app)
    assert ends.authorization_url == "http://127.0.0.1:9/authorize"
    assert ends.token_url == "http://127.0.0.1:9/token"
    assert ends.userinfo_url == providers.GOOGLE_USERINFO
    assert ends.api_url == "http://127.0.0.1:9/gmail"
    assert ends.pubsub_url == providers.GOOGLE_PUBSUB
    generic = providers.endpoints({"provider": "generic"})
    assert generic.token_url is None and generic.authorization_url is None


def test_grants_and_mail_servers() -> None:
    assert providers.grant_of(Provider.GMAIL_SERVICE) is providers.Grant.JWT_BEARER
    assert providers.grant_of(Provider.OUTLOOK_SERVICE) is providers.Grant.CLIENT_CREDENTIALS
    assert providers.grant_of(Provider.MAIL_RU) is providers.Grant.AUTHORIZATION_CODE
    imap, smtp = providers.mail_servers({"provider": "gmail"})
    assert imap == {"host": "imap.gmail.com", "port": 993, "secure": True}
    assert smtp == {"host": "smtp.gmail.com", "port": 465, "secure": True}
    imap, smtp = providers.mail_servers({"provider": "outlook", "cloud": "gcc-high"})
    assert imap is not None and imap["host"] == "outlook.office365.us"
    own = {"host": "127.0.0.1", "port": 1143, "secure": False}
    imap, smtp = providers.mail_servers({"provider": "generic", "imap": own})
    assert imap == own and smtp is None


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://auth.example.com/token", True),
        ("http://127.0.0.1:8080/token", True),
        ("http://localhost/token", True),
        ("http://[::1]:9000/token", True),
        ("http://auth.example.com/token", False),
        ("ftp://127.0.0.1/token", False),
        ("/relative", False),
    ],
)
def test_http_only_for_loopback(url: str, ok: bool) -> None:
    if ok:
        assert providers.check_url(url, "tokenUrl") == url
    else:
        with pytest.raises(BadRequest):
            providers.check_url(url, "tokenUrl")


def test_invalid_authority_refused() -> None:
    with pytest.raises(BadRequest):
        providers.endpoints({"provider": "outlook", "authority": "../evil"})


def test_secret_masking() -> None:
    assert providers.mask_secret("GOCSPX-abcdefghijklmnopV-Da") == "GOCSPX...V-Da"
    assert providers.mask_secret("short") == "******"
    view = app_view(
        {
            "id": "a",
            "provider": "outlook",
            "clientId": "cid",
            "clientSecret": "very-secret-value",
            "serviceKey": "-----BEGIN",
        }
    )
    assert view["clientSecret"] == MASK and view["serviceKey"] == MASK
    assert view["clientId"] == "cid"
    assert view["authority"] == "common" and view["cloud"] == "global"
    assert view["enabled"] is False and view["baseScopes"] == "imap"


def test_app_validation_per_provider() -> None:
    validate_app({"provider": "gmail", "clientId": "c", "clientSecret": "s"})
    with pytest.raises(BadRequest, match="clientSecret"):
        validate_app({"provider": "gmail", "clientId": "c"})
    with pytest.raises(BadRequest, match="authorizationUrl"):
        validate_app({"provider": "generic", "clientId": "c", "clientSecret": "s"})
    with pytest.raises(BadRequest, match="tenant"):
        validate_app(
            {
                "provider": "outlookService",
                "clientId": "c",
                "clientSecret": "s",
                "authority": "common",
            }
        )
    with pytest.raises(BadRequest, match="serviceKey"):
        validate_app(
            {"provider": "gmailService", "serviceClientEmail": "a@b", "serviceKey": "not a key"}
        )
    with pytest.raises(BadRequest, match="https"):
        validate_app(
            {
                "provider": "gmail",
                "clientId": "c",
                "clientSecret": "s",
                "tokenUrl": "http://example.com/token",
            }
        )


def test_authorization_url_has_pkce_and_provider_params() -> None:
    app = {
        "id": "app1",
        "provider": "gmail",
        "clientId": "cid",
        "authorizationUrl": "http://127.0.0.1:1/authorize?tenant=x",
    }
    url = authorization_url(
        app,
        redirect_uri="http://127.0.0.1:3000/oauth",
        state="st",
        code_challenge="ch",
        login_hint="user@example.com",
    )
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/authorize"
    assert q["tenant"] == "x"
    assert q["response_type"] == "code" and q["client_id"] == "cid"
    assert q["code_challenge"] == "ch" and q["code_challenge_method"] == "S256"
    assert q["access_type"] == "offline" and q["prompt"] == "consent"
    assert q["login_hint"] == "user@example.com"
    assert q["scope"].split()[0] == "https://mail.google.com/"


def test_with_query_keeps_existing_parameters() -> None:
    assert with_query("https://app.test/done?x=1", account="a b", state="new") == (
        "https://app.test/done?x=1&account=a+b&state=new"
    )
