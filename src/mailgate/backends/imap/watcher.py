"""The IMAP watcher: the one long-lived connection of an account runner.

Where the server offers NOTIFY (RFC 5465) the watcher asks for MessageNew, MessageExpunge,
FlagChange and MailboxName events of every personal mailbox and waits in IDLE with nothing
selected: every folder reports at once, as STATUS or LIST responses. Otherwise it IDLEs on INBOX
(NOOP polling where IDLE is missing) and the runner polls the other folders every ``resyncDelay``
with one LIST-STATUS. Syncing runs on the same connection between waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from mailgate.backends.imap.client import ImapClient, ImapTimeouts
from mailgate.backends.imap.session import CredentialSource, open_session
from mailgate.backends.imap.sync import AccountSyncer
from mailgate.domain.account import ImapConfig
from mailgate.errors import CommandError, ConnectError
from mailgate.protocols.imap import (
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    ListResponse,
    MailboxStatusResponse,
    Response,
    VanishedResponse,
)

NOTIFY_RESYNC = 15 * 60.0  # with NOTIFY every folder pushes: the periodic pass is a safety net
IDLE_RENEW = 25 * 60.0  # re-issue IDLE before servers' 30-minute inactivity logout
NOOP_POLL = 30.0  # poll interval for servers without IDLE
WATCH_MAILBOX = "INBOX"
NOTIFY_SPEC = (
    "(selected (MessageNew (UID) MessageExpunge FlagChange)) "
    "(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"
)
ALL_MAILBOXES = "*"  # hint: the mailbox list itself changed

SyncerFactory = Callable[[], Awaitable[AccountSyncer]]


class ImapWatcher:
    def __init__(
        self,
        account: str,
        cfg: ImapConfig,
        credentials: CredentialSource,
        *,
        syncer_factory: SyncerFactory | None = None,
        timeouts: ImapTimeouts | None = None,
        client_name: str = "mailgate",
        ignore_cert_errors: bool = False,
    ) -> None:
        self.account = account
        self.cfg = cfg
        self._credentials = credentials
        self._syncer_factory = syncer_factory
        self._timeouts = timeouts or ImapTimeouts()
        self._client_name = client_name
        self._ignore_cert_errors = ignore_cert_errors
        self.client: ImapClient | None = None
        self.notify = False
        self._hints: set[str] = set()
        self._remove_listener: Callable[[], None] | None = None
        self.log = structlog.get_logger("mailgate.imap").bind(account=account, role="watcher")

    @property
    def connections(self) -> int:
        return 0 if self.client is None or self.client.closed else 1

    async def open(self) -> None:
        client = await open_session(
            self.cfg,
            self._credentials,
            timeouts=self._timeouts,
            client_name=self._client_name,
            ignore_cert_errors=self._ignore_cert_errors,
            log=self.log,
        )
        self.client = client
        self._hints.clear()
        self._remove_listener = client.add_unsolicited_listener(self._on_unsolicited)
        self.notify = False
        if client.has_capability("NOTIFY") and client.has_capability("IDLE"):
            try:
                await client.notify_set(NOTIFY_SPEC)
                self.notify = True
            except CommandError as exc:
                self.log.info("NOTIFY refused; falling back to IDLE on INBOX", error=str(exc))

    def _on_unsolicited(self, resp: Response) -> None:
        if isinstance(resp, MailboxStatusResponse):
            self._hints.add(resp.mailbox)
        elif isinstance(resp, ListResponse):
            self._hints.add(ALL_MAILBOXES)
        elif isinstance(resp, ExistsResponse | ExpungeResponse | VanishedResponse | FetchResponse):
            client = self.client
            if client is not None and client.selected is not None:
                self._hints.add(client.selected.name)

    def take_hints(self) -> list[str]:
        hints = sorted(self._hints)
        self._hints.clear()
        return hints

    async def _prepare_wait(self, client: ImapClient) -> None:
        if self.notify:
            if client.selected is not None:
                await client.unselect()
        elif client.selected is None or client.selected.name.upper() != WATCH_MAILBOX:
            await client.select(WATCH_MAILBOX, readonly=True)

    async def wait_for_changes(self, timeout: float) -> list[str]:
        client = self.client
        if client is None or client.closed:
            raise ConnectError("not connected")
        if self._hints:
            return self.take_hints()
        if self.notify:
            timeout = max(timeout, NOTIFY_RESYNC)
        await self._prepare_wait(client)
        if self._hints:
            return self.take_hints()
        if client.has_capability("IDLE"):
            await client.idle(min(timeout, IDLE_RENEW))
            if client.closed:
                raise ConnectError("connection closed during IDLE")
            return self.take_hints()
        await asyncio.sleep(min(timeout, NOOP_POLL))
        await client.noop()
        return self.take_hints()

    async def sync(self, hints: Sequence[str]) -> None:
        """One sync pass on this connection (every changed mailbox; ``hints`` are forced)."""
        client = self.client
        if client is None or client.closed:
            raise ConnectError("not connected")
        if self._syncer_factory is None:
            return
        syncer = await self._syncer_factory()
        await syncer.run_pass(client, [h for h in hints if h != ALL_MAILBOXES])

    async def close(self) -> None:
        client, self.client = self.client, None
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if client is not None:
            await client.logout()
