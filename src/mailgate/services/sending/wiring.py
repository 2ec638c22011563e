"""Builds the sending services of a process (used by :mod:`mailgate.runtime.container`)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from mailgate.backends.registry import BackendCache
from mailgate.services.accounts import AccountService
from mailgate.services.settings import SettingsService
from mailgate.store.crypto import SecretBox
from mailgate.store.events import EventLog
from mailgate.store.mailboxes import MailboxRegistry

from .gateways import GatewayService
from .mailstore import MailStore
from .outbox import Outbox
from .submit import SubmitService
from .templates import TemplateService
from .worker import OutboxWorker


@dataclass
class Sending:
    submit: SubmitService
    gateways: GatewayService
    templates: TemplateService
    worker: OutboxWorker | None  # only in processes with the worker role


def build_sending(
    redis: Redis,
    box: SecretBox,
    account_service: AccountService,
    settings: SettingsService,
    events: EventLog,
    backends: BackendCache,
    registry: MailboxRegistry,
    *,
    node_id: str,
    worker: bool,
) -> Sending:
    gateways = GatewayService(redis, box)
    templates = TemplateService(redis)
    mailstore = MailStore(backends, registry)
    submit = SubmitService(account_service, settings, Outbox(redis), mailstore, gateways, templates)
    outbox_worker = (
        OutboxWorker(
            redis,
            account_service.store,
            settings,
            events,
            mailstore,
            gateways,
            node_id=node_id,
        )
        if worker
        else None
    )
    return Sending(submit=submit, gateways=gateways, templates=templates, worker=outbox_worker)
