"""Request bodies of the OAuth2 routes (field names as in EmailEngine's API).

Beyond EmailEngine: the ``generic`` provider, endpoint overrides on every provider
(``authorizationUrl``, ``tokenUrl``, ``userInfoUrl``, ``revocationUrl``, ``apiUrl``,
``pubSubUrl``), and the mail servers of the app's accounts (``imap``, ``smtp``: host, port,
secure, tls) for providers mailgate has no defaults for or private deployments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_URL = 2048
MAX_ID = 256
MAX_SCOPES = 64
MAX_KEY = 16384

ProviderName = Literal["gmail", "gmailService", "outlook", "outlookService", "mailRu", "generic"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ServerTlsIn(_Model):
    rejectUnauthorized: bool | None = None
    minVersion: str | None = Field(default=None, max_length=16)


class MailServerIn(_Model):
    host: str = Field(max_length=255)
    port: int = Field(ge=1, le=65535)
    secure: bool = False
    tls: ServerTlsIn | None = None


class _AppFields(_Model):
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    title: str | None = Field(default=None, max_length=256)
    enabled: bool | None = None
    includeInListing: bool | None = None
    clientId: str | Literal[False] | None = Field(default=None, max_length=MAX_ID * 2)
    clientSecret: str | None = Field(default=None, max_length=MAX_KEY)
    baseScopes: Literal["imap", "api", "pubsub"] | None = None
    pubSubApp: str | Literal[False] | None = Field(default=None, max_length=MAX_ID)
    extraScopes: list[str] | None = Field(default=None, max_length=MAX_SCOPES)
    skipScopes: list[str] | None = Field(default=None, max_length=MAX_SCOPES)
    serviceClient: str | Literal[False] | None = Field(default=None, max_length=MAX_ID)
    serviceClientEmail: str | None = Field(default=None, max_length=MAX_ID)
    serviceKey: str | None = Field(default=None, max_length=MAX_KEY)
    authMethod: Literal["serviceKey", "externalAccount"] | None = None
    googleProjectId: str | Literal[False] | None = Field(default=None, max_length=MAX_ID)
    googleWorkspaceAccounts: bool | None = None
    googleTopicName: str | Literal[False] | None = Field(default=None, max_length=MAX_ID)
    googleSubscriptionName: str | Literal[False] | None = Field(default=None, max_length=MAX_ID)
    authority: str | None = Field(default=None, max_length=MAX_ID)
    cloud: Literal["global", "gcc-high", "dod", "china"] | None = None
    tenant: str | None = Field(default=None, max_length=MAX_ID)
    redirectUrl: str | Literal[False] | None = Field(default=None, max_length=MAX_URL)
    # mailgate: endpoint overrides and mail servers
    authorizationUrl: str | None = Field(default=None, max_length=MAX_URL)
    tokenUrl: str | None = Field(default=None, max_length=MAX_URL)
    userInfoUrl: str | None = Field(default=None, max_length=MAX_URL)
    revocationUrl: str | None = Field(default=None, max_length=MAX_URL)
    apiUrl: str | None = Field(default=None, max_length=MAX_URL)
    pubSubUrl: str | None = Field(default=None, max_length=MAX_URL)
    imap: MailServerIn | None = None
    smtp: MailServerIn | None = None


class AppCreate(_AppFields):
    provider: ProviderName
    name: str = Field(max_length=256)


class AppUpdate(_AppFields):
    pass


class AppVerifyIn(_Model):
    account: str | None = Field(default=None, max_length=MAX_ID)
    testConnection: bool = True


class AuthFormIn(_Model):
    """``POST /v1/authentication/form``."""

    account: str | None = Field(default=None, max_length=MAX_ID, pattern=r"^[^\s{}]+$")
    name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=256)
    expectedEmail: str | None = Field(default=None, max_length=256)
    delegated: bool = False
    notifyFrom: str | None = Field(default=None, max_length=64)
    subconnections: list[str] | None = Field(default=None, max_length=64)
    path: list[str] | str | None = None
    redirectUrl: str | None = Field(default=None, max_length=MAX_URL)
    type: str | Literal[False] | None = Field(default=None, max_length=MAX_ID)
