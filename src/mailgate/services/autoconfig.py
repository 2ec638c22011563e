"""IMAP and SMTP settings for an email address, without any network lookup.

A built-in table covers the well-known providers (matched on the address's domain, and for
hosted domains such as Office 365 on a few well-known aliases); any other domain gets a guess
(``imap.<domain>:993`` TLS, ``smtp.<domain>:465`` TLS) marked ``_source: "guess"``. The reply
follows EmailEngine's ``DiscoveredEmailSettings``: ``imap``, ``smtp``, optional ``appPassword``
and ``_source`` (``"table"`` or ``"guess"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailgate.errors import BadRequest

MAX_ADDRESS_LENGTH = 320  # RFC 5321: 64 (local part) + 1 + 255 (domain)
SOURCE_TABLE = "table"
SOURCE_GUESS = "guess"
GUESS_IMAP_PORT = 993
GUESS_SMTP_PORT = 465


@dataclass(frozen=True, slots=True)
class Provider:
    """Server settings of one provider. ``user_is_local`` logs in with the local part only."""

    name: str
    imap_host: str
    smtp_host: str
    imap_port: int = 993
    smtp_port: int = 465
    smtp_secure: bool = True
    app_password: str | None = None  # instructions when the provider requires an app password
    user_is_local: bool = False


_GOOGLE = Provider(
    "Gmail",
    "imap.gmail.com",
    "smtp.gmail.com",
    app_password=(
        "Turn on 2-Step Verification and create an app password at "
        "https://myaccount.google.com/apppasswords, or connect with OAuth2"
    ),
)
_MICROSOFT = Provider(
    "Outlook",
    "outlook.office365.com",
    "smtp-mail.outlook.com",
    smtp_port=587,
    smtp_secure=False,
    app_password=(
        "Basic authentication is disabled for most Microsoft accounts: connect with OAuth2 "
        "(or create an app password at https://account.microsoft.com/security)"
    ),
)
_OFFICE365 = Provider(
    "Office 365", "outlook.office365.com", "smtp.office365.com", smtp_port=587, smtp_secure=False
)
_YAHOO = Provider(
    "Yahoo",
    "imap.mail.yahoo.com",
    "smtp.mail.yahoo.com",
    app_password="Create an app password under Account Security at https://login.yahoo.com/account/security",
)
_ICLOUD = Provider(
    "iCloud",
    "imap.mail.me.com",
    "smtp.mail.me.com",
    smtp_port=587,
    smtp_secure=False,
    app_password="Create an app-specific password at https://account.apple.com",
)
_AOL = Provider(
    "AOL",
    "imap.aol.com",
    "smtp.aol.com",
    app_password="Create an app password under Account Security at https://login.aol.com/account/security",
)
_GMX = Provider("GMX", "imap.gmx.net", "mail.gmx.net")
_GMX_COM = Provider("GMX", "imap.gmx.com", "mail.gmx.com")
_WEBDE = Provider("WEB.DE", "imap.web.de", "smtp.web.de", smtp_port=587, smtp_secure=False)
_YANDEX = Provider(
    "Yandex",
    "imap.yandex.com",
    "smtp.yandex.com",
    app_password="Create an app password at https://id.yandex.com/security/app-passwords",
)
_ZOHO = Provider("Zoho", "imap.zoho.com", "smtp.zoho.com")
_FASTMAIL = Provider(
    "Fastmail",
    "imap.fastmail.com",
    "smtp.fastmail.com",
    app_password="Create an app password under Settings → Privacy & Security at fastmail.com",
)
_MAILRU = Provider(
    "Mail.ru",
    "imap.mail.ru",
    "smtp.mail.ru",
    app_password="Create a password for external apps in the Mail.ru security settings",
)
_ZOHO_EU = Provider("Zoho", "imap.zoho.eu", "smtp.zoho.eu")
_COMCAST = Provider(
    "Xfinity", "imap.comcast.net", "smtp.comcast.net", smtp_port=587, smtp_secure=False
)
_MAILBOX_ORG = Provider("mailbox.org", "imap.mailbox.org", "smtp.mailbox.org")
_POSTEO = Provider("Posteo", "posteo.de", "posteo.de", smtp_port=587, smtp_secure=False)
_TONLINE = Provider("Telekom", "secureimap.t-online.de", "securesmtp.t-online.de")
_QQ = Provider("QQ Mail", "imap.qq.com", "smtp.qq.com")
_163 = Provider("NetEase 163", "imap.163.com", "smtp.163.com")

PROVIDERS: dict[str, Provider] = {
    "gmail.com": _GOOGLE,
    "googlemail.com": _GOOGLE,
    "outlook.com": _MICROSOFT,
    "hotmail.com": _MICROSOFT,
    "hotmail.co.uk": _MICROSOFT,
    "live.com": _MICROSOFT,
    "msn.com": _MICROSOFT,
    "passport.com": _MICROSOFT,
    "office365.com": _OFFICE365,
    "onmicrosoft.com": _OFFICE365,
    "yahoo.com": _YAHOO,
    "yahoo.co.uk": _YAHOO,
    "yahoo.fr": _YAHOO,
    "yahoo.de": _YAHOO,
    "ymail.com": _YAHOO,
    "rocketmail.com": _YAHOO,
    "icloud.com": _ICLOUD,
    "me.com": _ICLOUD,
    "mac.com": _ICLOUD,
    "aol.com": _AOL,
    "aim.com": _AOL,
    "gmx.net": _GMX,
    "gmx.de": _GMX,
    "gmx.at": _GMX,
    "gmx.ch": _GMX,
    "gmx.com": _GMX_COM,
    "gmx.us": _GMX_COM,
    "web.de": _WEBDE,
    "yandex.com": _YANDEX,
    "yandex.ru": _YANDEX,
    "ya.ru": _YANDEX,
    "zoho.com": _ZOHO,
    "zohomail.com": _ZOHO,
    "zoho.eu": _ZOHO_EU,
    "fastmail.com": _FASTMAIL,
    "fastmail.fm": _FASTMAIL,
    "mail.ru": _MAILRU,
    "inbox.ru": _MAILRU,
    "list.ru": _MAILRU,
    "bk.ru": _MAILRU,
    "comcast.net": _COMCAST,
    "mailbox.org": _MAILBOX_ORG,
    "posteo.de": _POSTEO,
    "t-online.de": _TONLINE,
    "qq.com": _QQ,
    "163.com": _163,
}


def split_address(email: str) -> tuple[str, str]:
    """``(local part, lower-cased domain)`` of an address; BadRequest when it is not one."""
    value = email.strip()
    local, at, domain = value.rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    if (
        not at
        or not local
        or not domain
        or len(value) > MAX_ADDRESS_LENGTH
        or any(c.isspace() for c in domain)
        or "." not in domain
    ):
        raise BadRequest('"email" must be a valid email', key="email")
    return local, domain


def find_provider(domain: str) -> Provider | None:
    """The table entry for ``domain`` or for its nearest listed parent domain."""
    parts = domain.split(".")
    for i in range(len(parts) - 1):
        provider = PROVIDERS.get(".".join(parts[i:]))
        if provider is not None:
            return provider
    return None


def _server(host: str, port: int, secure: bool, user: str) -> dict[str, Any]:
    return {"auth": {"user": user}, "host": host, "port": port, "secure": secure}


def discover(email: str) -> dict[str, Any]:
    """EmailEngine's ``DiscoveredEmailSettings`` for ``email`` (table entry or a guess)."""
    local, domain = split_address(email)
    address = f"{local}@{domain}"
    provider = find_provider(domain)
    if provider is None:
        return {
            "imap": _server(f"imap.{domain}", GUESS_IMAP_PORT, True, address),
            "smtp": _server(f"smtp.{domain}", GUESS_SMTP_PORT, True, address),
            "_source": SOURCE_GUESS,
        }
    user = local if provider.user_is_local else address
    out: dict[str, Any] = {
        "imap": _server(provider.imap_host, provider.imap_port, True, user),
        "smtp": _server(provider.smtp_host, provider.smtp_port, provider.smtp_secure, user),
        "_source": SOURCE_TABLE,
    }
    if provider.app_password is not None:
        out["appPassword"] = {
            "required": True,
            "provider": provider.name,
            "instructions": provider.app_password,
        }
    return out
