"""Builds the backend and watcher for an account from its record.

This is the one place that knows which adapter serves which kind of account; services receive a
:class:`~mailgate.backends.base.MailBackend` and never look at the provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from redis.asyncio import Redis

from mailgate.backends.base import MailBackend, Watcher
from mailgate.backends.graph.backend import GraphBackend, graph_api_url, mailbox_root
from mailgate.backends.graph.client import GraphClient, GraphHttp
from mailgate.backends.graph.folders import Folders
from mailgate.backends.graph.sync import GraphSyncer
from mailgate.backends.graph.watcher import GraphWatcher, configured_lifetime
from mailgate.backends.imap.backend import ImapBackend
from mailgate.backends.imap.session import CredentialSource, password_source
from mailgate.backends.imap.watcher import ImapWatcher, SyncerFactory
from mailgate.backends.oauth import OAuth2Source, TokenProvider
from mailgate.domain.account import AccountRecord
from mailgate.domain.sync import SyncOptions
from mailgate.errors import BadRequest, ConfigError, MailgateError
from mailgate.store.commit import Committer
from mailgate.store.mailboxes import MailboxRegistry


class AppLoader(Protocol):
    """Reads OAuth2 application records (``services.oauth2.apps.AppService``)."""

    async def load(self, app_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BackendOptions:
    client_name: str = "mailgate"
    ignore_cert_errors: bool = False
    mailboxes: MailboxRegistry | None = None  # message ids of IMAP accounts need it
    tokens: TokenProvider | None = None  # OAuth2 accounts get their tokens here
    apps: AppLoader | None = None  # API backends (Gmail, Graph) read their app's endpoints here
    app_tokens: Any = None  # tokens of service apps (Pub/Sub): TokenService.request_token
    graph_http: GraphHttp | None = None  # the process's one HTTP pool for Microsoft Graph
    graph_subscription_lifetime: float | None = None  # seconds (Config); None: the default


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


# --- Gmail API accounts (backends/gmail) -----------------------------------------------------
GMAIL_PROVIDERS = frozenset({"gmail", "gmailService"})
GMAIL_API_URL = "https://gmail.googleapis.com"
GMAIL_PUBSUB_URL = "https://pubsub.googleapis.com"


async def api_app(
    record: AccountRecord, options: BackendOptions, providers: frozenset[str]
) -> dict[str, Any] | None:
    """The OAuth2 app of an account served over a provider's REST API (an app of one of
    ``providers`` with ``baseScopes: api``), or None for any other account."""
    if not record.oauth2 or options.apps is None:
        return None
    app_id = record.oauth2.get("provider")
    if not isinstance(app_id, str) or not app_id:
        return None
    try:
        app = await options.apps.load(app_id)
    except MailgateError:
        return None
    if app.get("provider") not in providers or app.get("baseScopes") != "api":
        return None
    return app


async def gmail_api_app(record: AccountRecord, options: BackendOptions) -> dict[str, Any] | None:
    """The OAuth2 app of a Gmail API account (provider gmail/gmailService), or None."""
    return await api_app(record, options, GMAIL_PROVIDERS)


def build_gmail_backend(
    record: AccountRecord, app: dict[str, Any], options: BackendOptions
) -> MailBackend:
    from mailgate.backends.gmail.backend import GmailBackend
    from mailgate.backends.gmail.client import GmailClient

    if options.tokens is None:
        raise ConfigError("OAuth2 accounts need a token provider")
    client = GmailClient(record.account, options.tokens, str(app.get("apiUrl") or GMAIL_API_URL))
    return GmailBackend(record.account, client, push=bool(app.get("pubSubApp")))


async def build_backend_for(record: AccountRecord, options: BackendOptions) -> MailBackend:
    """:func:`build_backend`, or the API backend the account's OAuth2 app asks for."""
    gmail = await gmail_api_app(record, options)
    if gmail is not None:
        return build_gmail_backend(record, gmail, options)
    graph = await graph_api_app(record, options)
    if graph is not None:
        return GraphBackend(graph_client(record, graph, options))
    return build_backend(record, options)


async def build_api_watcher(
    record: AccountRecord,
    options: BackendOptions,
    context: Any,
) -> Watcher | None:
    """The watcher of an API-backed account (None: not one, use :func:`build_watcher`).

    ``context`` is a :class:`mailgate.backends.gmail.watcher.SyncContext` (Redis, committer,
    sync options)."""
    gmail = await gmail_api_app(record, options)
    if gmail is None:
        return None
    from mailgate.backends.gmail.client import GmailClient
    from mailgate.backends.gmail.watcher import GmailWatcher, PubSubSetup

    if options.tokens is None:
        raise ConfigError("OAuth2 accounts need a token provider")
    client = GmailClient(record.account, options.tokens, str(gmail.get("apiUrl") or GMAIL_API_URL))
    pubsub: PubSubSetup | None = None
    pubsub_id = gmail.get("pubSubApp")
    if isinstance(pubsub_id, str) and pubsub_id and options.apps is not None:
        try:
            pubsub_app = await options.apps.load(pubsub_id)
        except MailgateError:
            pubsub_app = None
        if pubsub_app is not None and options.app_tokens is not None:
            pubsub = PubSubSetup(
                app=pubsub_app,
                url=str(pubsub_app.get("pubSubUrl") or GMAIL_PUBSUB_URL),
                tokens=options.app_tokens,
            )
    return GmailWatcher(record.account, client, context, pubsub=pubsub)


async def build_api_sender(record: AccountRecord, options: BackendOptions) -> Any:
    """The :class:`~mailgate.backends.smtp.sender.Sender` of an account that sends over a
    provider API (Gmail ``messages.send``, Graph ``sendMail``), or None: send over SMTP."""
    graph = await graph_api_app(record, options)
    if graph is not None:
        from mailgate.backends.graph.sender import GraphSender

        return GraphSender(graph_client(record, graph, options))
    gmail = await gmail_api_app(record, options)
    if gmail is None or options.tokens is None:
        return None
    from mailgate.backends.gmail.client import GmailClient
    from mailgate.backends.gmail.sender import GmailSender

    return GmailSender(
        GmailClient(record.account, options.tokens, str(gmail.get("apiUrl") or GMAIL_API_URL))
    )


# --- Microsoft Graph accounts (backends/graph) -----------------------------------------------
GRAPH_PROVIDERS = frozenset({"outlook", "outlookService"})
APP_ONLY_PROVIDERS = frozenset({"outlookService"})


@dataclass(frozen=True)
class GraphRuntime:
    """What a Graph watcher needs from the process besides the account."""

    redis: Redis
    sync_options: Callable[[], Awaitable[SyncOptions]]
    service_url: Callable[[], Awaitable[str | None]]


async def graph_api_app(record: AccountRecord, options: BackendOptions) -> dict[str, Any] | None:
    """The OAuth2 app of a Graph account (provider outlook/outlookService), or None."""
    return await api_app(record, options, GRAPH_PROVIDERS)


def graph_client(
    record: AccountRecord, app: dict[str, Any], options: BackendOptions
) -> GraphClient:
    if options.tokens is None:
        raise ConfigError("OAuth2 accounts need a token provider")
    http = options.graph_http or default_graph_http()
    root = mailbox_root(record.oauth2 or {}, app_only=app.get("provider") in APP_ONLY_PROVIDERS)
    return GraphClient(
        http, api_url=graph_api_url(app), root=root, account=record.account, tokens=options.tokens
    )


_GRAPH_HTTP: list[GraphHttp] = []


def default_graph_http() -> GraphHttp:
    """The process's Graph HTTP pool when none was injected (tools, tests)."""
    if not _GRAPH_HTTP:
        _GRAPH_HTTP.append(GraphHttp())
    return _GRAPH_HTTP[0]


async def build_graph_watcher(
    record: AccountRecord, options: BackendOptions, runtime: GraphRuntime, fence: int | None
) -> Watcher | None:
    """The watcher of a Graph account (None: not one, use :func:`build_watcher`)."""
    app = await graph_api_app(record, options)
    if app is None:
        return None
    client = graph_client(record, app, options)

    async def syncer(folders: Folders) -> GraphSyncer:
        return GraphSyncer(
            record.account,
            client,
            folders,
            runtime.redis,
            Committer(runtime.redis, record.account, fence),
            runtime.sync_options,
        )

    lifetime = configured_lifetime(options.graph_subscription_lifetime)
    return GraphWatcher(
        record.account, client, runtime.redis, syncer, runtime.service_url, lifetime=lifetime
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
            backend = await build_backend_for(record, self.options)
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
