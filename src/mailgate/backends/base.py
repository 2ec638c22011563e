"""The Backend protocol: what services may ask of any mail backend (IMAP, Gmail API, Graph).

Services never branch on a provider's name: what differs between backends is told by
:class:`BackendCapabilities`. A backend object serves API calls for one account in one process
(with its own bounded connection pool); a :class:`Watcher` is the long-lived connection an account
runner keeps to learn about changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

import msgspec

from mailgate.domain.mailbox import Mailbox


class PushKind(StrEnum):
    IDLE = "idle"  # IMAP IDLE on one mailbox, the rest polled
    NOTIFY = "notify"  # IMAP NOTIFY: every mailbox reports at once
    PUBSUB = "pubsub"  # Gmail users.watch + Cloud Pub/Sub
    SUBSCRIPTION = "subscription"  # Graph change notifications
    POLL = "poll"  # nothing pushed: poll every resyncDelay


class BackendCapabilities(msgspec.Struct, frozen=True):
    labels: bool = False  # mailboxes are labels: a message may be in several at once
    push: PushKind = PushKind.POLL
    server_side_sent_copy: bool = False  # the provider files sent mail itself
    thread_ids: bool = False  # messages carry a provider thread id
    stable_ids_across_moves: bool = False  # a message keeps its id when moved


class MailboxChange(msgspec.Struct, omit_defaults=True, rename="camel"):
    path: str
    new_path: str | None = None
    mailbox_id: str | None = None
    created: bool | None = None
    renamed: bool | None = None
    deleted: bool | None = None
    subscribed: bool | None = None


class MailBackend(Protocol):
    """API operations on one account's mailbox store."""

    @property
    def capabilities(self) -> BackendCapabilities: ...

    async def verify(self) -> None:
        """Connect and authenticate once; raise AuthenticationError or ConnectError."""

    async def list_mailboxes(self, *, counters: bool = False) -> list[Mailbox]: ...

    async def resolve_path(self, path: str) -> str:
        """A real mailbox path for ``path``, which may be a special-use alias like ``\\Sent``."""

    async def create_mailbox(self, path: str | list[str]) -> MailboxChange: ...

    async def rename_mailbox(self, path: str, new_path: str | list[str]) -> MailboxChange: ...

    async def delete_mailbox(self, path: str) -> MailboxChange: ...

    async def set_subscribed(self, path: str, subscribed: bool) -> MailboxChange: ...

    async def close(self) -> None:
        """Release every connection this backend holds."""


class Watcher(Protocol):
    """The long-lived connection of an account runner."""

    @property
    def connections(self) -> int: ...

    async def open(self) -> None:
        """Connect and authenticate; raise AuthenticationError or ConnectError."""

    async def wait_for_changes(self, timeout: float) -> list[str]:
        """Block until the server reports a change or ``timeout`` passes.

        Returns the paths of the mailboxes that changed (empty on timeout). Raises ConnectError
        when the connection is lost.
        """

    async def sync(self, hints: Sequence[str]) -> None:
        """Bring the index up to date and emit events; ``hints`` name mailboxes known to have
        changed (others are checked cheaply). Raises ConnectError when the connection is lost."""

    async def close(self) -> None:
        """Log out and close; never raises."""
