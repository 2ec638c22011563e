"""Account records: what an application registered, and the runtime state of its connection.

State machine of an account's connection (:class:`AccountState`)::

    init ──► connecting ──► syncing ──► connected
               ▲   │                        │
               │   ├──► authenticationError │ (credentials refused; retried slowly)
               │   └──► connectError ◄──────┘ (network/TLS/protocol failure; backoff)
               └──────────── disconnected ◄── (stopped, or lease moved to another process)
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class AccountState(StrEnum):
    INIT = "init"
    CONNECTING = "connecting"
    SYNCING = "syncing"
    CONNECTED = "connected"
    AUTHENTICATION_ERROR = "authenticationError"
    CONNECT_ERROR = "connectError"
    DISCONNECTED = "disconnected"
    PAUSED = "paused"
    UNSET = "unset"


class Indexer(StrEnum):
    FULL = "full"
    FAST = "fast"


class Auth(msgspec.Struct, omit_defaults=True, rename="camel"):
    user: str = ""
    pass_: str | None = msgspec.field(default=None, name="pass")
    access_token: str | None = None


class TlsOptions(msgspec.Struct, omit_defaults=True, rename="camel"):
    reject_unauthorized: bool = True
    min_version: str | None = None


class ImapConfig(msgspec.Struct, omit_defaults=True, rename="camel"):
    host: str = ""
    port: int = 993
    secure: bool = True
    auth: Auth | None = None
    tls: TlsOptions | None = None
    disable_imap4rev2: bool | None = msgspec.field(default=None, name="disableIMAP4rev2")
    resync_delay: int | None = None
    disabled: bool | None = None
    use_auth_server: bool | None = None
    sent_mail_path: str | None = None
    drafts_mail_path: str | None = None
    junk_mail_path: str | None = None
    trash_mail_path: str | None = None
    archive_mail_path: str | None = None


class SmtpConfig(msgspec.Struct, omit_defaults=True, rename="camel"):
    host: str = ""
    port: int = 587
    secure: bool = False
    auth: Auth | None = None
    tls: TlsOptions | None = None
    use_auth_server: bool | None = None


class HeaderPair(msgspec.Struct):
    key: str
    value: str = ""


class AccountRecord(msgspec.Struct, omit_defaults=True, rename="camel"):
    """One registered account as stored (secrets encrypted by the store)."""

    account: str
    name: str | None = None
    email: str | None = None
    expected_email: str | None = None
    imap: ImapConfig | None = None
    smtp: SmtpConfig | None = None
    oauth2: dict[str, object] | None = None
    path: list[str] | None = None
    subconnections: list[str] | None = None
    imap_indexer: Indexer | None = None
    notify_from: str | None = None
    webhooks: str | None = None
    webhooks_custom_headers: list[HeaderPair] | None = None
    copy: bool | None = None
    logs: bool | None = None
    proxy: str | None = None
    smtp_ehlo_name: str | None = None
    locale: str | None = None
    tz: str | None = None
    created: str | None = None

    @property
    def account_type(self) -> str:
        if self.oauth2:
            return "oauth2"
        if self.imap is None and self.smtp is not None:
            return "sending"
        return "imap"


class LastError(msgspec.Struct, omit_defaults=True, rename="camel"):
    response: str
    description: str | None = None
    server_response_code: str | None = None
    time: str | None = None
    token_request: dict[str, object] | None = None  # a failed OAuth2 token request


class RuntimeState(msgspec.Struct, omit_defaults=True, rename="camel"):
    """What the account's runner reports; kept apart from the record it never writes."""

    state: AccountState = AccountState.INIT
    last_error: LastError | None = None
    connections: int = 0
    owner: str | None = None
    state_changed: str | None = None
    sync_time: str | None = None
