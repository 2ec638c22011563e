"""The Backend protocol: what services may ask of any mail backend (IMAP, Gmail API, Graph).

Services never branch on a provider's name: what differs between backends is told by
:class:`BackendCapabilities`. A backend object serves API calls for one account in one process
(with its own bounded connection pool); a :class:`Watcher` is the long-lived connection an account
runner keeps to learn about changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

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


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page of a listing or search: by ``cursor`` when given, else by ``page`` number."""

    page: int = 0
    page_size: int = 20
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """Query options of reading one message (EmailEngine's names in comments)."""

    text_type: str | None = None  # textType: None (no text content), "*", "plain" or "html"
    max_bytes: int | None = None  # maxBytes
    web_safe_html: bool = False  # webSafeHtml
    embed_attached_images: bool = False  # embedAttachedImages
    pre_process_html: bool = False  # preProcessHtml
    mark_as_seen: bool = False  # markAsSeen


@dataclass(frozen=True, slots=True)
class FlagChanges:
    """Flag (or label) operations; ``None`` leaves that operation out."""

    add: tuple[str, ...] | None = None
    delete: tuple[str, ...] | None = None
    set: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class MessageChanges:
    flags: FlagChanges | None = None
    labels: FlagChanges | None = None


@dataclass(slots=True)
class Download:
    """A body to stream to the client: raw source or a decoded attachment.

    ``chunks`` holds a connection until it is exhausted or closed (``aclose``)."""

    content_type: str
    filename: str | None
    chunks: AsyncIterator[bytes]


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

    # -- messages (ids are opaque strings: each backend packs and unpacks its own) -----------

    async def list_messages(self, path: str, paging: PageRequest) -> dict[str, Any]:
        """One page of a mailbox, newest first: paging fields + ``messages`` (contract JSON)."""

    async def search_messages(
        self, path: str, search: Mapping[str, Any], paging: PageRequest
    ) -> dict[str, Any]:
        """Like :meth:`list_messages` for the messages matching EmailEngine's search object."""

    async def get_message(self, message: str, options: ReadOptions) -> dict[str, Any]:
        """A message's details (contract ``MessageDetails``); NotFound MessageNotFound."""

    async def get_text(
        self, text: str, *, text_type: str, max_bytes: int | None, web_safe_html: bool
    ) -> dict[str, Any]:
        """The body text named by a text id: ``{plain, html, hasMore}``."""

    async def message_source(self, message: str) -> Download:
        """The raw RFC 822 message, byte for byte, streamed."""

    async def download_attachment(self, attachment: str) -> Download:
        """An attachment's decoded content, streamed; NotFound AttachmentNotFound."""

    async def update_message(self, message: str, changes: MessageChanges) -> dict[str, Any]: ...

    async def move_message(self, message: str, target: str) -> dict[str, Any]:
        """``{path, id?, uid?}`` of the message in ``target``."""

    async def delete_message(self, message: str, *, force: bool) -> dict[str, Any]:
        """Move to Trash, or delete for good with ``force`` (or when already in Trash)."""

    async def append_message(
        self,
        path: str,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        internal_date: datetime | None = None,
    ) -> dict[str, Any]:
        """Store a message: ``{id?, path, uid?, uidValidity?}``."""

    async def update_messages(
        self, path: str, search: Mapping[str, Any], changes: MessageChanges
    ) -> dict[str, Any]: ...

    async def move_messages(
        self, path: str, search: Mapping[str, Any], target: str
    ) -> dict[str, Any]: ...

    async def delete_messages(
        self, path: str, search: Mapping[str, Any], *, force: bool
    ) -> dict[str, Any]: ...

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
