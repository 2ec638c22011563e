"""Builds the backend and watcher for an account from its record.

This is the one place that knows which adapter serves which kind of account; services receive a
:class:`~mailgate.backends.base.MailBackend` and never look at the provider.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec

from mailgate.backends.base import MailBackend, Watcher
from mailgate.backends.imap.backend import ImapBackend
from mailgate.backends.imap.session import CredentialSource, password_source
from mailgate.backends.imap.watcher import ImapWatcher, SyncerFactory
from mailgate.backends.oauth import OAuth2Source, TokenProvider
from mailgate.domain.account import AccountRecord
from mailgate.errors import BadRequest, ConfigError
from mailgate.store.mailboxes import MailboxRegistry


@dataclass(frozen=True)
class BackendOptions:
    client_name: str = "mailgate"
    ignore_cert_errors: bool = False
    mailboxes: MailboxRegistry | None = None  # message ids of IMAP accounts need it
    tokens: TokenProvider | None = None  # OAuth2 accounts get their tokens here


def credentials_for(record: AccountRecord, options: BackendOptions) -> CredentialSource:
    """OAuth2 accounts log in with fresh tokens, the others with their stored password."""
    if record.oauth2:
        if options.tokens is None:
            raise ConfigError("OAuth2 accounts need a token provider")
        return OAuth2Source(options.tokens, record.account)
    if record.imap is None:
        raise ConfigError("This account has no IMAP settings")
    return password_source(record.imap)


def _cache_key(record: AccountRecord) -> AccountRecord:
    """The record without its OAuth2 tokens: a token refresh must not rebuild the backend."""
    if not record.oauth2:
        return record
    oauth2 = {k: v for k, v in record.oauth2.items() if k not in _TOKEN_FIELDS}
    return msgspec.structs.replace(record, oauth2=oauth2)


_TOKEN_FIELDS = frozenset({"accessToken", "refreshToken", "expires", "scopes"})


def build_backend(record: AccountRecord, options: BackendOptions) -> MailBackend:
    if record.imap is None or not record.imap.host:
        raise BadRequest("This account has no IMAP access configured", "NoImapAccess")
    return ImapBackend(
        record.account,
        record.imap,
        credentials_for(record, options),
        client_name=options.client_name,
        ignore_cert_errors=options.ignore_cert_errors,
        mailboxes=options.mailboxes,
    )


def build_watcher(
    record: AccountRecord, options: BackendOptions, syncer_factory: SyncerFactory | None = None
) -> Watcher | None:
    """The runner's watcher, or None for an account with nothing to watch (send-only)."""
    if record.imap is None or not record.imap.host or record.imap.disabled:
        return None
    return ImapWatcher(
        record.account,
        record.imap,
        credentials_for(record, options),
        syncer_factory=syncer_factory,
        client_name=options.client_name,
        ignore_cert_errors=options.ignore_cert_errors,
    )


class BackendCache:
    """One backend (with its connection pool) per account in this process."""

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self._backends: dict[str, tuple[AccountRecord, MailBackend]] = {}
        self._lock = asyncio.Lock()

    async def get(self, record: AccountRecord) -> MailBackend:
        async with self._lock:
            cached = self._backends.get(record.account)
            if cached is not None and cached[0] == _cache_key(record):
                return cached[1]
            if cached is not None:
                await cached[1].close()
            backend = build_backend(record, self.options)
            self._backends[record.account] = (_cache_key(record), backend)
            return backend

    async def drop(self, account: str) -> None:
        async with self._lock:
            cached = self._backends.pop(account, None)
        if cached is not None:
            await cached[1].close()

    async def close(self) -> None:
        async with self._lock:
            backends, self._backends = self._backends, {}
        await asyncio.gather(*(b.close() for _, b in backends.values()), return_exceptions=True)
