"""What differs between OAuth2 providers: endpoints, scopes, grants and mail servers.

Pure functions over a stored application record (a dict with EmailEngine's camelCase field
names). Every endpoint can be overridden per app (``authorizationUrl``, ``tokenUrl``,
``userInfoUrl``, ``revocationUrl``, ``apiUrl``, ``pubSubUrl``), so tests and private deployments
point an app at their own servers; ``generic`` apps (beyond EmailEngine) have no defaults at all.

Microsoft apps pick their login host from ``cloud`` (``global``, ``gcc-high``, ``dod``,
``china``) and their tenant from ``authority`` (``common``, ``organizations``, ``consumers`` or a
tenant id/domain).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from mailgate.errors import BadRequest


class Provider(StrEnum):
    GMAIL = "gmail"
    GMAIL_SERVICE = "gmailService"
    OUTLOOK = "outlook"
    OUTLOOK_SERVICE = "outlookService"
    MAIL_RU = "mailRu"
    GENERIC = "generic"


class BaseScopes(StrEnum):
    IMAP = "imap"
    API = "api"
    PUBSUB = "pubsub"


class Cloud(StrEnum):
    GLOBAL = "global"
    GCC_HIGH = "gcc-high"
    DOD = "dod"
    CHINA = "china"


class Grant(StrEnum):
    """How a provider's access tokens are obtained."""

    AUTHORIZATION_CODE = "authorization_code"  # user consent, then refresh_token
    JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # service account, delegation
    CLIENT_CREDENTIALS = "client_credentials"  # app-only access


SERVICE_PROVIDERS = frozenset({Provider.GMAIL_SERVICE, Provider.OUTLOOK_SERVICE})
AUTHORITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True)
class MicrosoftCloud:
    login: str  # authorization server host
    graph: str  # Graph API host
    outlook_scope: str  # resource of the IMAP/SMTP scopes
    imap: str
    smtp: str


MS_CLOUDS: dict[Cloud, MicrosoftCloud] = {
    Cloud.GLOBAL: MicrosoftCloud(
        "login.microsoftonline.com",
        "graph.microsoft.com",
        "outlook.office.com",
        "outlook.office365.com",
        "smtp.office365.com",
    ),
    Cloud.GCC_HIGH: MicrosoftCloud(
        "login.microsoftonline.us",
        "graph.microsoft.us",
        "outlook.office365.us",
        "outlook.office365.us",
        "smtp.office365.us",
    ),
    Cloud.DOD: MicrosoftCloud(
        "login.microsoftonline.us",
        "dod-graph.microsoft.us",
        "outlook-dod.office365.us",
        "outlook-dod.office365.us",
        "smtp-dod.office365.us",
    ),
    Cloud.CHINA: MicrosoftCloud(
        "login.chinacloudapi.cn",
        "microsoftgraph.chinacloudapi.cn",
        "partner.outlook.cn",
        "partner.outlook.cn",
        "smtp.partner.outlook.cn",
    ),
}

GOOGLE_AUTHORIZE = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
GOOGLE_USERINFO = "https://openidconnect.googleapis.com/v1/userinfo"
GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"
GOOGLE_API = "https://gmail.googleapis.com"
GOOGLE_PUBSUB = "https://pubsub.googleapis.com"
GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
GOOGLE_MODIFY_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
GOOGLE_PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
MAILRU_AUTHORIZE = "https://oauth.mail.ru/login"
MAILRU_TOKEN = "https://oauth.mail.ru/token"
MAILRU_USERINFO = "https://oauth.mail.ru/userinfo"

#: scopes asked for at consent only, to learn who the user is (removable with ``skipScopes``)
IDENTITY_SCOPES: dict[Provider, tuple[str, ...]] = {
    Provider.GMAIL: ("openid", "email"),
    Provider.OUTLOOK: ("openid", "profile", "email"),
    Provider.MAIL_RU: ("userinfo",),
    Provider.GENERIC: (),
}


@dataclass(frozen=True)
class Endpoints:
    authorization_url: str | None
    token_url: str | None
    userinfo_url: str | None
    revocation_url: str | None
    api_url: str | None
    pubsub_url: str | None


@dataclass(frozen=True)
class MailServer:
    host: str
    port: int
    secure: bool

    def as_config(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "secure": self.secure}


def provider_of(app: Mapping[str, Any]) -> Provider:
    try:
        return Provider(str(app.get("provider")))
    except ValueError as exc:
        raise BadRequest(f"Unknown OAuth2 provider {app.get('provider')!r}") from exc


def cloud_of(app: Mapping[str, Any]) -> MicrosoftCloud:
    try:
        return MS_CLOUDS[Cloud(str(app.get("cloud") or Cloud.GLOBAL))]
    except ValueError as exc:
        raise BadRequest(f"Unknown Azure cloud {app.get('cloud')!r}") from exc


def base_scopes_of(app: Mapping[str, Any]) -> BaseScopes:
    try:
        return BaseScopes(str(app.get("baseScopes") or BaseScopes.IMAP))
    except ValueError as exc:
        raise BadRequest(f"Unknown baseScopes {app.get('baseScopes')!r}") from exc


def grant_of(provider: Provider) -> Grant:
    if provider is Provider.GMAIL_SERVICE:
        return Grant.JWT_BEARER
    if provider is Provider.OUTLOOK_SERVICE:
        return Grant.CLIENT_CREDENTIALS
    return Grant.AUTHORIZATION_CODE


def authority_of(app: Mapping[str, Any]) -> str:
    authority = str(app.get("authority") or "common")
    if not AUTHORITY_RE.match(authority):
        raise BadRequest(f"Invalid authority {authority!r}")
    return authority


def default_endpoints(app: Mapping[str, Any]) -> Endpoints:
    provider = provider_of(app)
    if provider in (Provider.GMAIL, Provider.GMAIL_SERVICE):
        interactive = provider is Provider.GMAIL
        return Endpoints(
            GOOGLE_AUTHORIZE if interactive else None,
            GOOGLE_TOKEN,
            GOOGLE_USERINFO if interactive else None,
            GOOGLE_REVOKE if interactive else None,
            GOOGLE_API,
            GOOGLE_PUBSUB,
        )
    if provider in (Provider.OUTLOOK, Provider.OUTLOOK_SERVICE):
        cloud = cloud_of(app)
        base = f"https://{cloud.login}/{authority_of(app)}/oauth2/v2.0"
        interactive = provider is Provider.OUTLOOK
        graph = f"https://{cloud.graph}"
        return Endpoints(
            f"{base}/authorize" if interactive else None,
            f"{base}/token",
            f"{graph}/oidc/userinfo" if interactive else None,
            None,
            graph,
            None,
        )
    if provider is Provider.MAIL_RU:
        return Endpoints(MAILRU_AUTHORIZE, MAILRU_TOKEN, MAILRU_USERINFO, None, None, None)
    return Endpoints(None, None, None, None, None, None)


def endpoints(app: Mapping[str, Any]) -> Endpoints:
    """The app's endpoints: its overrides, else the provider's defaults."""
    d = default_endpoints(app)
    return Endpoints(
        app.get("authorizationUrl") or d.authorization_url,
        app.get("tokenUrl") or d.token_url,
        app.get("userInfoUrl") or d.userinfo_url,
        app.get("revocationUrl") or d.revocation_url,
        app.get("apiUrl") or d.api_url,
        app.get("pubSubUrl") or d.pubsub_url,
    )


def default_scopes(app: Mapping[str, Any]) -> list[str]:
    provider = provider_of(app)
    base = base_scopes_of(app)
    if provider in (Provider.GMAIL, Provider.GMAIL_SERVICE):
        return {
            BaseScopes.IMAP: [GOOGLE_MAIL_SCOPE],
            BaseScopes.API: [GOOGLE_MODIFY_SCOPE],
            BaseScopes.PUBSUB: [GOOGLE_PUBSUB_SCOPE],
        }[base]
    if provider is Provider.OUTLOOK:
        cloud = cloud_of(app)
        if base is BaseScopes.API:
            graph = f"https://{cloud.graph}"
            return [f"{graph}/Mail.ReadWrite", f"{graph}/Mail.Send", "offline_access"]
        outlook = f"https://{cloud.outlook_scope}"
        return [f"{outlook}/IMAP.AccessAsUser.All", f"{outlook}/SMTP.Send", "offline_access"]
    if provider is Provider.OUTLOOK_SERVICE:
        cloud = cloud_of(app)
        host = cloud.graph if base is BaseScopes.API else cloud.imap
        return [f"https://{host}/.default"]
    if provider is Provider.MAIL_RU:
        return ["mail.imap"]
    return []


def scopes(app: Mapping[str, Any], *, consent: bool = False) -> list[str]:
    """Scopes to request: defaults (+ identity scopes at consent) + ``extraScopes`` −
    ``skipScopes``, in order and without duplicates."""
    wanted = default_scopes(app)
    if consent:
        wanted += IDENTITY_SCOPES.get(provider_of(app), ())
    wanted += [str(s) for s in app.get("extraScopes") or ()]
    skip = {str(s) for s in app.get("skipScopes") or ()}
    out: list[str] = []
    for scope in wanted:
        if scope and scope not in skip and scope not in out:
            out.append(scope)
    return out


def mail_servers(app: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """IMAP and SMTP settings (no auth) for accounts of the app: its own, else the provider's."""
    provider = provider_of(app)
    imap: MailServer | None = None
    smtp: MailServer | None = None
    if provider in (Provider.GMAIL, Provider.GMAIL_SERVICE):
        imap, smtp = (
            MailServer("imap.gmail.com", 993, True),
            MailServer("smtp.gmail.com", 465, True),
        )
    elif provider in (Provider.OUTLOOK, Provider.OUTLOOK_SERVICE):
        cloud = cloud_of(app)
        imap, smtp = MailServer(cloud.imap, 993, True), MailServer(cloud.smtp, 587, False)
    elif provider is Provider.MAIL_RU:
        imap, smtp = MailServer("imap.mail.ru", 993, True), MailServer("smtp.mail.ru", 465, True)
    own_imap = app.get("imap")
    own_smtp = app.get("smtp")
    return (
        dict(own_imap) if isinstance(own_imap, Mapping) else (imap.as_config() if imap else None),
        dict(own_smtp) if isinstance(own_smtp, Mapping) else (smtp.as_config() if smtp else None),
    )


def authorization_params(app: Mapping[str, Any]) -> dict[str, str]:
    """Provider-specific extra parameters of the authorization request."""
    provider = provider_of(app)
    if provider is Provider.GMAIL:
        # offline access and a fresh consent: Google issues a refresh token only then
        return {"access_type": "offline", "prompt": "consent"}
    if provider is Provider.OUTLOOK:
        return {"prompt": "select_account"}
    return {}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, field: str) -> str:
    """An absolute https URL, or http to a loopback host (tests, local servers)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host and is_loopback(host):
        return url
    raise BadRequest(
        f'"{field}" must be an https URL (http only for loopback hosts)', "InputValidationError"
    )


def mask_secret(value: str) -> str:
    """A client secret shown partially in error reports (first 6 and last 4 characters)."""
    if len(value) < 16:
        return "******"
    return f"{value[:6]}...{value[-4:]}"


def check_redirect(url: str, field: str) -> str:
    """Where a browser is sent back to (the application's page): any absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        return url
    raise BadRequest(f'"{field}" must be an absolute http(s) URL', "InputValidationError")
