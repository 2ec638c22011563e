"""Wiring: builds every store and service of a process from its configuration."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mailgate.backends.base import Watcher
from mailgate.backends.gmail.watcher import SyncContext as GmailSyncContext
from mailgate.backends.graph.client import GraphHttp
from mailgate.backends.imap import pacing as imap_pacing
from mailgate.backends.imap.sync import AccountSyncer
from mailgate.backends.registry import (
    BackendCache,
    BackendOptions,
    GraphRuntime,
    build_api_sender,
    build_api_watcher,
    build_graph_watcher,
    build_watcher,
)
from mailgate.domain.account import AccountRecord
from mailgate.domain.sync import SyncOptions
from mailgate.errors import ConfigError, StoreError
from mailgate.runtime import metrics
from mailgate.runtime.config import Config, Role
from mailgate.runtime.supervisor import Supervisor
from mailgate.services.account_logs import AccountLogs
from mailgate.services.accounts import AccountService
from mailgate.services.blocklists import BlocklistService
from mailgate.services.changes import ChangeFeed
from mailgate.services.delivery_test import DeliveryTests
from mailgate.services.exports import ExportService
from mailgate.services.mailboxes import MailboxService
from mailgate.services.messages import MessageService
from mailgate.services.oauth2.wiring import OAuth2, build_oauth2
from mailgate.services.sending.wiring import Sending, build_sending
from mailgate.services.settings import SettingsService
from mailgate.services.stats import StatsService
from mailgate.services.sync_options import load_sync_options
from mailgate.services.token_audit import TokenAudit
from mailgate.services.webhook_routes import WebhookRouteService
from mailgate.services.webhooks import WebhookWorker
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.commit import Committer
from mailgate.store.crypto import SecretBox, load_or_create_secret
from mailgate.store.embedded import EmbeddedRedis
from mailgate.store.events import EventLog
from mailgate.store.leases import LeaseStore
from mailgate.store.mailboxes import MailboxRegistry
from mailgate.store.redis import connect, ping, text
from mailgate.store.tokens import TokenStore

SECRET_CHECK_VALUE = "mailgate"

log = structlog.get_logger("mailgate")


@dataclass
class Container:
    config: Config
    redis: Redis
    box: SecretBox
    embedded: EmbeddedRedis | None
    accounts: AccountStore
    tokens: TokenStore
    settings: SettingsService
    events: EventLog
    leases: LeaseStore
    backends: BackendCache
    account_service: AccountService
    mailbox_service: MailboxService
    message_service: MessageService
    stats: StatsService
    supervisor: Supervisor | None = None
    sending: Sending | None = None  # submit, outbox worker, gateways, templates
    webhooks: WebhookWorker | None = None  # delivery of the event logs (worker role)
    oauth2: OAuth2 | None = None  # OAuth2 apps, tokens, consent flow, hosted form
    # EmailEngine's smaller operations (services/: changes, account_logs, token_audit, ...)
    changes: ChangeFeed | None = None  # GET /v1/changes
    account_logs: AccountLogs | None = None  # GET /v1/logs/{account}, fed by the runners
    token_audit: TokenAudit | None = None  # GET /v1/tokens/{token}/log, fed by api/auth.py
    webhook_routes: WebhookRouteService | None = None
    blocklists: BlocklistService | None = None
    delivery_tests: DeliveryTests | None = None
    exports: ExportService | None = None
    graph_http: GraphHttp | None = None  # the one HTTP pool of Microsoft Graph accounts
    started: float = field(default_factory=time.time)

    async def close(self) -> None:
        if self.exports is not None:
            await self.exports.close()
        await self.backends.close()
        if self.graph_http is not None:
            await self.graph_http.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()
        if self.embedded is not None:
            await self.embedded.astop()


async def check_secret(redis: Redis, box: SecretBox) -> None:
    """Fail clearly when MAILGATE_SECRET differs from the one the stored secrets use."""
    stored = await redis.get(keys.SECRET_CHECK)
    if stored is None:
        await redis.set(keys.SECRET_CHECK, box.encrypt(SECRET_CHECK_VALUE))
        return
    try:
        box.decrypt(text(stored))
    except StoreError as exc:
        raise ConfigError(
            "MAILGATE_SECRET does not match the secret this Redis was set up with; "
            "stored passwords could not be read"
        ) from exc


async def open_redis(config: Config) -> tuple[Redis, EmbeddedRedis | None]:
    embedded = None
    url = config.redis_url
    if not url:
        embedded = EmbeddedRedis(config.data)
        embedded.start()
        url = embedded.url
    redis = connect(url)
    try:
        await ping(redis)
    except StoreError:
        if embedded is not None:
            embedded.stop()
        raise
    return redis, embedded


async def build_container(config: Config) -> Container:
    imap_pacing.configure(config.logins_per_second)
    metrics.install()  # IMAP command latency of every connection in this process
    redis, embedded = await open_redis(config)
    try:
        secret = load_or_create_secret(config.secret, config.data)
        box = SecretBox(secret)
        await check_secret(redis, box)
    except BaseException:
        # a process that cannot start must not leave its embedded Redis behind
        await redis.aclose()
        if embedded is not None:
            embedded.stop()
        raise
    accounts = AccountStore(redis, box)
    settings = SettingsService(redis, box)
    events = EventLog(redis)
    node_id = config.node_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    leases = LeaseStore(redis, node_id)
    registry = MailboxRegistry(redis)
    oauth2 = build_oauth2(redis, box, accounts)
    options = BackendOptions(
        client_name=str(await settings.get("imapClientName") or "mailgate"),
        ignore_cert_errors=bool(await settings.get("ignoreMailCertErrors")),
        mailboxes=registry,
        tokens=oauth2.tokens,
        apps=oauth2.apps,
        app_tokens=oauth2.tokens,  # Gmail push: Pub/Sub service-account tokens
        graph_http=(graph_http := GraphHttp()),
        graph_subscription_lifetime=config.graph_subscription_lifetime,
    )
    backends = BackendCache(options)
    account_service = AccountService(redis, accounts, events, settings, backends)
    oauth2.attach(account_service, settings, secret)
    container = Container(
        config=config,
        redis=redis,
        box=box,
        embedded=embedded,
        accounts=accounts,
        tokens=TokenStore(redis),
        settings=settings,
        events=events,
        leases=leases,
        backends=backends,
        account_service=account_service,
        mailbox_service=MailboxService(account_service, backends),
        message_service=MessageService(account_service, backends),
        stats=StatsService(redis, accounts, leases),
    )

    if config.has_role(Role.WORKER):
        container.webhooks = WebhookWorker(redis, settings, accounts, node_id=node_id)
    container.sending = build_sending(
        redis,
        box,
        account_service,
        settings,
        events,
        backends,
        registry,
        node_id=node_id,
        worker=config.has_role(Role.WORKER),
    )

    container.oauth2 = oauth2
    if container.sending is not None and container.sending.worker is not None:
        # accounts that send over a provider API (Gmail messages.send) skip SMTP
        async def api_sender(record: AccountRecord) -> Any:
            return await build_api_sender(record, options)

        container.sending.worker.delivery.api_senders = api_sender
        container.sending.worker.delivery.smtp_credentials = oauth2.tokens.smtp_config

    if container.sending is not None:

        async def api_sending(record: AccountRecord) -> bool:
            return await build_api_sender(record, options) is not None

        container.sending.submit.api_sending = api_sending
    container.graph_http = graph_http
    container.changes = ChangeFeed(redis, settings)
    container.account_logs = AccountLogs(redis, accounts, settings)
    container.token_audit = TokenAudit(redis, settings)
    container.webhook_routes = WebhookRouteService(redis)
    container.blocklists = BlocklistService(redis)
    container.delivery_tests = DeliveryTests(
        redis, account_service, container.message_service, container.sending
    )
    container.exports = ExportService(
        redis, container.message_service, config.data / "exports", node_id
    )

    async def watcher_factory(record: AccountRecord, fence: int) -> tuple[Watcher | None, float]:
        sync_options = await load_sync_options(record, settings)

        async def syncer() -> AccountSyncer:
            # options are read again each pass so setting changes apply without a reconnect
            fresh = await load_sync_options(record, settings)
            return AccountSyncer(
                record.account,
                redis,
                registry,
                Committer(redis, record.account, fence),
                fresh,
                chunk=config.index_chunk,
            )

        async def graph_options() -> SyncOptions:
            return await load_sync_options(record, settings)

        async def service_url() -> str | None:
            return str(await settings.get("serviceUrl") or "") or None

        # Gmail API accounts (backends/gmail): history sync + Pub/Sub, fenced like IMAP
        gmail = await build_api_watcher(
            record,
            options,
            GmailSyncContext(redis, Committer(redis, record.account, fence), graph_options),
        )
        if gmail is not None:
            return gmail, sync_options.resync_delay
        graph = await build_graph_watcher(
            record, options, GraphRuntime(redis, graph_options, service_url), fence
        )
        if graph is not None:
            return graph, sync_options.resync_delay
        return build_watcher(record, options, syncer), sync_options.resync_delay

    roles = ",".join(sorted(r.value for r in config.roles))
    container.supervisor = Supervisor(
        redis,
        accounts,
        events,
        leases,
        watcher_factory,
        roles=roles,
        run_accounts=config.has_role(Role.SYNC),
        max_accounts=config.max_accounts,
    )
    container.supervisor.journal = container.account_logs
    return container
