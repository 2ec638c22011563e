"""Finding messages on a pooled IMAP connection: mailbox numbers, selection, special folders.

- :class:`MailboxNumbers` caches an account's (path, UIDVALIDITY) ↔ number pairs in the process
  (numbers never change once given, DESIGN.md §1).
- :func:`lease` borrows a pooled connection and gives it back healthy when the operation failed
  for a client-side reason (a 404, a NO from the server): only transport failures discard it.
- :func:`open_mailbox` makes ``path`` the selected mailbox of a connection, for free when it
  already is; then :func:`synced` sends a NOOP before the next command, so messages delivered
  meanwhile are seen. (Not pipelined: Dovecot runs a pipelined SEARCH or FETCH before the
  NOOP's mailbox sync, which happens only once no other command is running.)
- :class:`SpecialFolders` knows which path is Trash, Sent... (LIST, cached for a minute).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from mailgate.backends.imap.client import ImapClient, SelectedMailbox
from mailgate.backends.imap.listing import ListItem, to_mailboxes
from mailgate.backends.imap.pool import ImapPool
from mailgate.domain.account import ImapConfig
from mailgate.domain.mailbox import INBOX_SPECIAL_USE
from mailgate.errors import ApiError, CommandError, NotFound
from mailgate.store.mailboxes import MailboxRegistry

#: Seconds the special-use folders of an account are cached.
SPECIAL_FOLDERS_TTL = 60.0

T = TypeVar("T")


def same_mailbox(a: str, b: str) -> bool:
    """Mailbox names are case-sensitive except INBOX."""
    return a == b or (a.upper() == "INBOX" and b.upper() == "INBOX")


class MailboxNumbers:
    """An account's mailbox numbers with an in-process cache in front of Redis."""

    def __init__(self, registry: MailboxRegistry, account: str) -> None:
        self.registry = registry
        self.account = account
        self._numbers: dict[tuple[str, int], int] = {}
        self._paths: dict[int, tuple[str, int]] = {}

    async def number(self, path: str, uidvalidity: int) -> int:
        key = (path, uidvalidity)
        found = self._numbers.get(key)
        if found is None:
            found = await self.registry.number(self.account, path, uidvalidity)
            self._numbers[key] = found
            self._paths[found] = key
        return found

    async def lookup(self, number: int) -> tuple[str, int] | None:
        found = self._paths.get(number)
        if found is None:
            found = await self.registry.lookup(self.account, number)
            if found is not None:
                self._paths[number] = found
                self._numbers[found] = number
        return found


@asynccontextmanager
async def lease(pool: ImapPool) -> AsyncIterator[ImapClient]:
    """A pooled connection; API errors and server NO/BAD answers keep it in the pool."""
    failure: ApiError | CommandError | None = None
    async with pool.acquire() as client:
        try:
            yield client
        except (ApiError, CommandError) as exc:  # the connection itself is fine
            failure = exc
    if failure is not None:
        raise failure


async def open_mailbox(
    client: ImapClient, path: str, *, missing: NotFound
) -> tuple[SelectedMailbox, bool]:
    """Select ``path`` read-write unless it already is; ``missing`` is raised when the server
    refuses it (no such mailbox, or not selectable). Also tells whether the selection was
    reused: then pass the next command through :func:`synced`."""
    box = client.selected
    if box is not None and same_mailbox(box.name, path) and not box.readonly:
        return box, True
    try:
        return await client.select(path), False
    except CommandError as exc:
        raise missing from exc


async def synced(client: ImapClient, reused: bool, command: Awaitable[T]) -> T:
    """Run ``command``; on a reused selection send a NOOP first, so the server brings its view
    of the mailbox up to date (new and expunged messages) before it runs."""
    if reused:
        await client.noop()
    return await command


class SpecialFolders:
    """path → special use (``\\Trash``, ``\\Sent``..., ``\\Inbox``) of one account, cached."""

    def __init__(self, cfg: ImapConfig, user_paths: dict[str, str]) -> None:
        self.cfg = cfg
        self.user_paths = user_paths
        self._by_path: dict[str, str] = {}
        self._loaded = float("-inf")

    async def load(self, client: ImapClient) -> dict[str, str]:
        if time.monotonic() - self._loaded < SPECIAL_FOLDERS_TTL:
            return self._by_path
        entries = await client.list("", "*", special_use=True)
        items = [ListItem(e.name, e.delimiter, frozenset(e.flags)) for e in entries]
        boxes = to_mailboxes(items, user_paths=self.user_paths, counters=False)
        self._by_path = {b.path: b.special_use for b in boxes if b.special_use}
        self._loaded = time.monotonic()
        return self._by_path

    async def special_use(self, client: ImapClient, path: str) -> str | None:
        if path.upper() == "INBOX":
            return INBOX_SPECIAL_USE
        return (await self.load(client)).get(path)

    async def path_of(self, client: ImapClient, use: str) -> str | None:
        wanted = use.lower()
        if wanted == INBOX_SPECIAL_USE.lower():
            return "INBOX"
        for path, special in (await self.load(client)).items():
            if special.lower() == wanted:
                return path
        return None

    async def resolve(self, client: ImapClient, path: str) -> str:
        """A real path for ``path``, which may be a special-use alias like ``\\Sent``."""
        if not path.startswith("\\"):
            return path
        found = await self.path_of(client, path)
        if found is None:
            raise NotFound(f"No mailbox with special use {path}", "MailboxNotFound")
        return found
