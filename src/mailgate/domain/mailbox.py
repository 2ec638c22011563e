"""Mailboxes as the API shows them, whatever the backend (IMAP folder, Gmail label, Graph folder)."""

from __future__ import annotations

from enum import StrEnum

import msgspec

SPECIAL_USE_FLAGS = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
INBOX_SPECIAL_USE = "\\Inbox"


class SpecialUseSource(StrEnum):
    USER = "user"
    EXTENSION = "extension"
    NAME = "name"


class MailboxStatus(msgspec.Struct, omit_defaults=True):
    messages: int | None = None
    unseen: int | None = None
    error: str | None = None


class Mailbox(msgspec.Struct, omit_defaults=True, rename="camel"):
    path: str
    name: str
    delimiter: str | None = None
    parent_path: str | None = None
    listed: bool | None = None  # always set: None only so omit_defaults keeps False
    subscribed: bool | None = None
    no_select: bool | None = None
    no_inferiors: bool | None = None
    special_use: str | None = None
    special_use_source: SpecialUseSource | None = None
    id: str | None = None
    messages: int | None = None
    uid_next: int | None = None
    status: MailboxStatus | None = None
