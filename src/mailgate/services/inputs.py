"""Request bodies of the account routes (field names as in EmailEngine's API)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_HOST = 255
MAX_SECRET = 4096
MAX_ID = 256


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AuthIn(_Model):
    user: str = Field(max_length=1024)
    pass_: str | None = Field(default=None, alias="pass", max_length=MAX_SECRET)
    accessToken: str | Literal[False] | None = Field(default=None)


class TlsIn(_Model):
    rejectUnauthorized: bool | None = None
    minVersion: str | None = Field(default=None, max_length=16)


class ImapIn(_Model):
    partial: bool | None = None
    host: str | None = Field(default=None, max_length=MAX_HOST)
    port: int | None = Field(default=None, ge=1, le=65535)
    secure: bool | None = None
    auth: AuthIn | Literal[False] | None = None
    tls: TlsIn | None = None
    disableIMAP4rev2: bool | None = None
    resyncDelay: int | None = Field(default=None, ge=1)
    disabled: bool | None = None
    useAuthServer: bool | None = None
    sentMailPath: str | None = Field(default=None, max_length=1024)
    draftsMailPath: str | None = Field(default=None, max_length=1024)
    junkMailPath: str | None = Field(default=None, max_length=1024)
    trashMailPath: str | None = Field(default=None, max_length=1024)
    archiveMailPath: str | None = Field(default=None, max_length=1024)


class SmtpIn(_Model):
    partial: bool | None = None
    host: str | None = Field(default=None, max_length=MAX_HOST)
    port: int | None = Field(default=None, ge=1, le=65535)
    secure: bool | None = None
    auth: AuthIn | Literal[False] | None = None
    tls: TlsIn | None = None
    useAuthServer: bool | None = None


class OAuth2AuthIn(_Model):
    user: str | None = Field(default=None, max_length=1024)
    delegatedUser: str | None = Field(default=None, max_length=1024)
    delegatedAccount: str | None = Field(default=None, max_length=MAX_ID)


class OAuth2In(_Model):
    partial: bool | None = None
    authorize: bool | None = None
    redirectUrl: str | None = Field(default=None, max_length=2048)
    provider: str | None = Field(default=None, max_length=MAX_ID)
    auth: OAuth2AuthIn | None = None
    useAuthServer: bool | None = None
    accessToken: str | None = Field(default=None, max_length=MAX_SECRET * 4)
    refreshToken: str | None = Field(default=None, max_length=MAX_SECRET * 4)
    expires: str | None = Field(default=None, max_length=64)


class HeaderIn(_Model):
    key: str = Field(max_length=1024)
    value: str = Field(default="", max_length=10240)


class AccountFields(_Model):
    name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=256)
    expectedEmail: str | None = Field(default=None, max_length=256)
    path: list[str] | str | None = None
    subconnections: list[str] | None = None
    webhooks: str | None = Field(default=None, max_length=2048)
    copy_: bool | None = Field(default=None, alias="copy")
    logs: bool | None = None
    notifyFrom: str | None = Field(default=None, max_length=64)
    proxy: str | None = Field(default=None, max_length=2048)
    smtpEhloName: str | None = Field(default=None, max_length=MAX_HOST)
    imap: ImapIn | Literal[False] | None = None
    smtp: SmtpIn | Literal[False] | None = None
    oauth2: OAuth2In | Literal[False] | None = None
    webhooksCustomHeaders: list[HeaderIn] | None = None
    locale: str | None = Field(default=None, max_length=16)
    tz: str | None = Field(default=None, max_length=64)


class AccountCreate(AccountFields):
    account: str | None = Field(default=None, max_length=MAX_ID, pattern=r"^[^\s{}]+$")
    imapIndexer: Literal["full", "fast"] | None = None


class AccountUpdate(AccountFields):
    pass


class VerifyAccountIn(_Model):
    mailboxes: bool = False
    imap: ImapIn | Literal[False] | None = None
    smtp: SmtpIn | Literal[False] | None = None
    proxy: str | None = None
    smtpEhloName: str | None = None


class ReconnectIn(_Model):
    reconnect: bool = False


class FlushIn(_Model):
    flush: bool = False
    notifyFrom: str | None = Field(default=None, max_length=64)
    imapIndexer: Literal["full", "fast"] | None = None


class SyncIn(_Model):
    sync: bool = False


class MailboxCreateIn(_Model):
    path: list[str] | str


class MailboxModifyIn(_Model):
    path: str = Field(max_length=4096)
    newPath: list[str] | str | None = None
    subscribed: bool | None = None


class TokenCreateIn(_Model):
    account: str | None = Field(default=None, max_length=MAX_ID)
    description: str = Field(default="", max_length=1024)
    scopes: list[Literal["*", "api", "metrics", "smtp", "imap-proxy"]] = Field(
        default_factory=lambda: ["api"],  # type: ignore[arg-type]
        min_length=1,
    )
    metadata: str | None = Field(default=None, max_length=10240)
    restrictions: dict[str, object] | None = None
    permissions: dict[str, object] | None = None
    expires: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=64)
