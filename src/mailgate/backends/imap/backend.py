"""The IMAP backend: API operations on one account over a small pool of IMAP connections."""

from __future__ import annotations

import contextlib

import structlog

from mailgate.backends.base import (
    BackendCapabilities,
    MailboxChange,
    PushKind,
)
from mailgate.backends.imap.client import ImapClient, ImapTimeouts
from mailgate.backends.imap.listing import ListItem, join_path, to_mailboxes
from mailgate.backends.imap.mailbox_access import MailboxNumbers, SpecialFolders
from mailgate.backends.imap.messages import ImapMessages
from mailgate.backends.imap.pool import ImapPool
from mailgate.backends.imap.session import CredentialSource, open_session
from mailgate.backends.message_methods import MessageMethods, MessageOps
from mailgate.domain.account import ImapConfig
from mailgate.domain.mailbox import Mailbox
from mailgate.errors import CommandError, ConfigError, Conflict, NotFound
from mailgate.store.mailboxes import MailboxRegistry

STATUS_ITEMS = ("MESSAGES", "UNSEEN", "UIDNEXT")


def user_special_paths(cfg: ImapConfig) -> dict[str, str]:
    """Special-use folders the account configured by hand."""
    pairs = {
        "\\Sent": cfg.sent_mail_path,
        "\\Drafts": cfg.drafts_mail_path,
        "\\Junk": cfg.junk_mail_path,
        "\\Trash": cfg.trash_mail_path,
        "\\Archive": cfg.archive_mail_path,
    }
    return {use: path for use, path in pairs.items() if path}


def list_items(entries: list[object]) -> list[ListItem]:
    items: list[ListItem] = []
    for entry in entries:
        items.append(
            ListItem(
                path=entry.name,  # type: ignore[attr-defined]
                delimiter=entry.delimiter,  # type: ignore[attr-defined]
                flags=frozenset(entry.flags),  # type: ignore[attr-defined]
                status=entry.status,  # type: ignore[attr-defined]
            )
        )
    return items


async def list_mailboxes_on(
    client: ImapClient, cfg: ImapConfig, *, counters: bool
) -> list[Mailbox]:
    entries = await client.list(
        "",
        "*",
        special_use=True,
        subscribed_info=True,
        status_items=STATUS_ITEMS if counters else (),
    )
    return to_mailboxes(
        list_items(list(entries)), user_paths=user_special_paths(cfg), counters=counters
    )


class ImapBackend(MessageMethods):
    """Implements :class:`mailgate.backends.base.MailBackend` for IMAP accounts."""

    def __init__(
        self,
        account: str,
        cfg: ImapConfig,
        credentials: CredentialSource,
        *,
        timeouts: ImapTimeouts | None = None,
        client_name: str = "mailgate",
        ignore_cert_errors: bool = False,
        mailboxes: MailboxRegistry | None = None,
    ) -> None:
        self.account = account
        self.cfg = cfg
        self._credentials = credentials
        self._timeouts = timeouts or ImapTimeouts()
        self._client_name = client_name
        self._ignore_cert_errors = ignore_cert_errors
        self.log = structlog.get_logger("mailgate.imap").bind(account=account)
        self.pool = ImapPool(self._open)
        self._caps = BackendCapabilities(push=PushKind.IDLE)
        self._messages: ImapMessages | None = None
        if mailboxes is not None:
            self._messages = ImapMessages(
                self.pool,
                MailboxNumbers(mailboxes, account),
                SpecialFolders(cfg, user_special_paths(cfg)),
            )

    @property
    def capabilities(self) -> BackendCapabilities:
        return self._caps

    async def _open(self) -> ImapClient:
        client = await open_session(
            self.cfg,
            self._credentials,
            timeouts=self._timeouts,
            client_name=self._client_name,
            ignore_cert_errors=self._ignore_cert_errors,
            log=self.log,
        )
        push = PushKind.NOTIFY if client.has_capability("NOTIFY") else PushKind.IDLE
        self._caps = BackendCapabilities(
            push=push,
            thread_ids=client.has_capability("X-GM-EXT-1") or client.has_capability("OBJECTID"),
            stable_ids_across_moves=False,
        )
        return client

    async def verify(self) -> None:
        async with self.pool.acquire() as client:
            await client.noop()

    async def list_mailboxes(self, *, counters: bool = False) -> list[Mailbox]:
        async with self.pool.acquire() as client:
            return await list_mailboxes_on(client, self.cfg, counters=counters)

    async def _delimiter(self, client: ImapClient) -> str | None:
        entries = await client.list("", "")
        for entry in entries:
            return entry.delimiter
        return None

    async def resolve_path(self, path: str) -> str:
        if not path.startswith("\\"):
            return path
        wanted = path.lower()
        for mailbox in await self.list_mailboxes():
            if mailbox.special_use and mailbox.special_use.lower() == wanted:
                return mailbox.path
        raise NotFound(f"No mailbox with special use {path}", "MailboxNotFound")

    async def create_mailbox(self, path: str | list[str]) -> MailboxChange:
        async with self.pool.acquire() as client:
            full = join_path(path, await self._delimiter(client))
            try:
                await client.create(full)
            except CommandError as exc:
                if (exc.code or "").upper() == "ALREADYEXISTS" or "exists" in str(exc).lower():
                    return MailboxChange(path=full, created=False)
                raise
            await _try_subscribe(client, full)
            return MailboxChange(path=full, created=True)

    async def rename_mailbox(self, path: str, new_path: str | list[str]) -> MailboxChange:
        path = await self.resolve_path(path)
        async with self.pool.acquire() as client:
            full = join_path(new_path, await self._delimiter(client))
            try:
                await client.rename(path, full)
            except CommandError as exc:
                code = (exc.code or "").upper()
                if code == "NONEXISTENT":
                    raise NotFound("Mailbox does not exist", "MailboxNotFound") from exc
                if code == "ALREADYEXISTS":
                    raise Conflict("Target mailbox already exists", "MailboxExists") from exc
                raise
            await _try_subscribe(client, full)
            return MailboxChange(path=path, new_path=full, renamed=True)

    async def delete_mailbox(self, path: str) -> MailboxChange:
        path = await self.resolve_path(path)
        if path.upper() == "INBOX":
            raise Conflict("INBOX can not be deleted", "CannotDeleteInbox")
        async with self.pool.acquire() as client:
            try:
                await client.delete(path)
            except CommandError as exc:
                if (exc.code or "").upper() == "NONEXISTENT" or "exist" in str(exc).lower():
                    raise NotFound("Mailbox does not exist", "MailboxNotFound") from exc
                raise
            with contextlib.suppress(CommandError):
                await client.unsubscribe(path)
            return MailboxChange(path=path, deleted=True)

    async def set_subscribed(self, path: str, subscribed: bool) -> MailboxChange:
        path = await self.resolve_path(path)
        async with self.pool.acquire() as client:
            if subscribed:
                await client.subscribe(path)
            else:
                await client.unsubscribe(path)
        return MailboxChange(path=path, subscribed=subscribed)

    # -- messages (see backends/imap/messages.py) -----------------------------------------------

    @property
    def messages(self) -> ImapMessages:
        if self._messages is None:
            raise ConfigError("this backend was built without a mailbox registry")
        return self._messages

    def message_ops(self) -> MessageOps:
        return self.messages

    async def close(self) -> None:
        await self.pool.close()


async def _try_subscribe(client: ImapClient, path: str) -> None:
    with contextlib.suppress(CommandError):
        await client.subscribe(path)
