"""Gmail labels as mailboxes, and flags as labels.

A label is a mailbox: system labels keep their id as path (``INBOX``, ``SENT``...) and get the
special use an IMAP client would see; user labels are mailboxes named by the label name, nested
on ``/``. One virtual mailbox, :data:`ALL_MAIL_PATH` (``\\All``), lists every message outside
Spam and Trash. Hidden system labels (``UNREAD``, ``CHAT``, ``CATEGORY_*``) are not mailboxes.

Flags map to labels: ``\\Seen`` is the absence of ``UNREAD``, ``\\Flagged`` is ``STARRED``,
``\\Draft`` is ``DRAFT``. Other IMAP flags have no Gmail equivalent and are ignored.

The mapping functions are pure; :class:`LabelCache` keeps one account's label list for a short
while so resolving a path does not cost a request each time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mailgate.domain.mailbox import Mailbox, MailboxStatus, SpecialUseSource
from mailgate.errors import NotFound

DELIMITER = "/"
ALL_MAIL_PATH = "[Gmail]/All Mail"
ALL_MAIL_ID = ""  # no label: messages.list without labelIds (Spam and Trash excluded)
#: Seconds a fetched label list is trusted.
LABEL_CACHE_TTL = 30.0

#: System labels shown as mailboxes: id -> (special use, name).
SYSTEM_MAILBOXES: dict[str, tuple[str, str]] = {
    "INBOX": ("\\Inbox", "INBOX"),
    "SENT": ("\\Sent", "Sent Mail"),
    "DRAFT": ("\\Drafts", "Drafts"),
    "TRASH": ("\\Trash", "Trash"),
    "SPAM": ("\\Junk", "Spam"),
    "STARRED": ("\\Flagged", "Starred"),
    "IMPORTANT": ("\\Important", "Important"),
}
#: How system labels show in a message's ``labels`` (as Gmail's IMAP X-GM-LABELS does).
SYSTEM_LABEL_NAMES: dict[str, str] = {
    "INBOX": "\\Inbox",
    "SENT": "\\Sent",
    "DRAFT": "\\Draft",
    "TRASH": "\\Trash",
    "SPAM": "\\Spam",
    "STARRED": "\\Starred",
    "IMPORTANT": "\\Important",
}
#: Labels that say where a message is (a move takes it out of these).
LOCATION_LABELS = ("INBOX", "SPAM", "TRASH")
#: Order in which a message's labels pick the mailbox its events are reported in.
PRIMARY_ORDER = ("DRAFT", "SPAM", "TRASH", "INBOX", "SENT")
#: Labels whose changes count as flag changes.
FLAG_LABELS = {"\\Seen": "UNREAD", "\\Flagged": "STARRED", "\\Draft": "DRAFT"}


@dataclass(frozen=True, slots=True)
class Label:
    id: str
    name: str
    type: str = "user"
    hidden: bool = False

    @property
    def path(self) -> str:
        return self.id if self.type == "system" else self.name

    @property
    def special_use(self) -> str | None:
        found = SYSTEM_MAILBOXES.get(self.id) if self.type == "system" else None
        return found[0] if found else None

    @property
    def is_mailbox(self) -> bool:
        return self.type != "system" or self.id in SYSTEM_MAILBOXES


def label_from(resource: Mapping[str, Any]) -> Label:
    return Label(
        id=str(resource.get("id", "")),
        name=str(resource.get("name", "")),
        type=str(resource.get("type") or "user"),
        hidden=resource.get("labelListVisibility") == "labelHide",
    )


def flags_of(label_ids: Iterable[str]) -> list[str]:
    """IMAP flags of a message with these labels."""
    ids = set(label_ids)
    flags: list[str] = []
    if "UNREAD" not in ids:
        flags.append("\\Seen")
    if "STARRED" in ids:
        flags.append("\\Flagged")
    if "DRAFT" in ids:
        flags.append("\\Draft")
    return flags


def flag_label_changes(add: Iterable[str], delete: Iterable[str]) -> tuple[list[str], list[str]]:
    """(labels to add, labels to remove) for adding and deleting IMAP flags."""
    add_labels: list[str] = []
    remove_labels: list[str] = []
    for flag in add:
        label = FLAG_LABELS.get(_flag_key(flag))
        if label == "UNREAD":
            remove_labels.append(label)
        elif label == "STARRED":
            add_labels.append(label)
    for flag in delete:
        label = FLAG_LABELS.get(_flag_key(flag))
        if label == "UNREAD":
            add_labels.append(label)
        elif label == "STARRED":
            remove_labels.append(label)
    return add_labels, remove_labels


def _flag_key(flag: str) -> str:
    lowered = flag.lower()
    for key in FLAG_LABELS:
        if key.lower() == lowered:
            return key
    return flag


def join_path(path: str | list[str]) -> str:
    if isinstance(path, list):
        return DELIMITER.join(p.strip(DELIMITER) for p in path if p)
    return path


def to_mailbox(label: Label, counts: Mapping[str, Any] | None = None) -> Mailbox:
    path = label.path
    if label.type == "system":
        name = SYSTEM_MAILBOXES[label.id][1]
        parent = None
    else:
        parent, _, name = path.rpartition(DELIMITER)
        parent = parent or None
    box = Mailbox(
        path=path,
        name=name,
        delimiter=DELIMITER,
        parent_path=parent,
        listed=True,
        subscribed=not label.hidden,
        special_use=label.special_use,
        special_use_source=SpecialUseSource.EXTENSION if label.special_use else None,
        id=label.id,
    )
    if counts is not None:
        box.messages = int(counts.get("messagesTotal") or 0)
        box.status = MailboxStatus(
            messages=int(counts.get("messagesTotal") or 0),
            unseen=int(counts.get("messagesUnread") or 0),
        )
    return box


def all_mail_mailbox(total: int | None = None, unseen: int | None = None) -> Mailbox:
    box = Mailbox(
        path=ALL_MAIL_PATH,
        name="All Mail",
        delimiter=DELIMITER,
        listed=True,
        subscribed=True,
        special_use="\\All",
        special_use_source=SpecialUseSource.EXTENSION,
    )
    if total is not None:
        box.messages = total
        box.status = MailboxStatus(messages=total, unseen=unseen)
    return box


class LabelSet:
    """One account's labels with lookups by id, name, path and special use."""

    def __init__(self, labels: Iterable[Label]) -> None:
        self.by_id = {label.id: label for label in labels}
        self.by_name = {label.name.lower(): label for label in self.by_id.values()}

    def mailboxes(self) -> list[Label]:
        return [label for label in self.by_id.values() if label.is_mailbox]

    def find(self, path: str) -> Label | None:
        """The label of a mailbox path, special-use name or label id; None for All Mail."""
        if path.startswith("\\"):
            wanted = path.lower()
            for label in self.by_id.values():
                if label.special_use and label.special_use.lower() == wanted:
                    return label
            return None
        if path.upper() in SYSTEM_MAILBOXES and path.upper() in self.by_id:
            return self.by_id[path.upper()]
        found = self.by_id.get(path) or self.by_name.get(path.lower())
        return found if found is not None and found.is_mailbox else None

    def label_id(self, name: str) -> str | None:
        """A label id from what a client calls it: ``\\Starred``-style names, ids, names."""
        for label_id, shown in SYSTEM_LABEL_NAMES.items():
            if shown.lower() == name.lower():
                return label_id
        if name.startswith("\\"):
            found = self.find(name)
            return found.id if found else None
        if name in self.by_id:
            return name
        label = self.by_name.get(name.lower())
        return label.id if label else None

    def shown_labels(self, label_ids: Iterable[str]) -> list[str]:
        """A message's ``labels`` field: system labels as X-GM-LABELS shows them, user names."""
        out: list[str] = []
        for label_id in label_ids:
            if label_id in SYSTEM_LABEL_NAMES:
                out.append(SYSTEM_LABEL_NAMES[label_id])
            else:
                label = self.by_id.get(label_id)
                if label is not None and label.type != "system":
                    out.append(label.name)
        return out

    def primary(self, label_ids: Iterable[str]) -> Label | None:
        """The mailbox a message's events are reported in (None: All Mail)."""
        ids = list(label_ids)
        for wanted in PRIMARY_ORDER:
            if wanted in ids and wanted in self.by_id:
                return self.by_id[wanted]
        for label_id in ids:
            label = self.by_id.get(label_id)
            if label is not None and label.type != "system":
                return label
        return None


def is_system_path(path: str) -> bool:
    return path.upper() in SYSTEM_MAILBOXES or path == ALL_MAIL_PATH


def require(labels: LabelSet, path: str) -> Label:
    found = labels.find(path)
    if found is None:
        raise NotFound("Mailbox does not exist", "MailboxNotFound")
    return found


class LabelCache:
    """The label list of one account, fetched again after :data:`LABEL_CACHE_TTL` or a miss."""

    def __init__(self, fetch: Any) -> None:
        self._fetch = fetch  # async () -> list of label resources
        self._labels: LabelSet | None = None
        self._at = 0.0

    def invalidate(self) -> None:
        self._labels = None

    async def get(self, *, fresh: bool = False) -> LabelSet:
        now = time.monotonic()
        if fresh or self._labels is None or now - self._at > LABEL_CACHE_TTL:
            resources = await self._fetch()
            self._labels = LabelSet(label_from(r) for r in resources)
            self._at = now
        return self._labels

    async def resolve(self, path: str) -> Label | None:
        """The label of ``path`` (None: All Mail); NotFound MailboxNotFound when unknown."""
        if path == ALL_MAIL_PATH or path.lower() == "\\all":
            return None
        labels = await self.get()
        found = labels.find(path)
        if found is None:
            found = (await self.get(fresh=True)).find(path)
        if found is None:
            raise NotFound("Mailbox does not exist", "MailboxNotFound")
        return found
