"""One Gmail mailbox: labels, messages, threads, drafts and the history log.

Follows the ``users.labels``, ``users.messages``, ``users.threads``, ``users.drafts`` and
``users.history`` resources of ``gmail.v1.json`` and the guides "Manage labels", "Manage
threads" and "Synchronize clients" (https://developers.google.com/workspace/gmail/api/guides):

- System labels (``type: system``) cannot be created, renamed or deleted; user labels get ids
  ``Label_<n>``; counters are computed from the messages (TRASH/SPAM messages count only for
  TRASH/SPAM themselves).
- A message joins a thread when one of its ``In-Reply-To``/``References`` ids names a stored
  message with the same normalized subject; a requested ``threadId`` is honoured only when those
  criteria hold for that thread (the ``Message.threadId`` documentation), else a new thread starts.
- Every change appends one history record (ids increase with random gaps) holding
  ``messagesAdded`` / ``messagesDeleted`` / ``labelsAdded`` / ``labelsRemoved``; records older
  than the retention floor are gone, and ``startHistoryId`` below the floor answers 404.
- Trash adds ``TRASH`` (and drops ``SPAM``), untrash removes it; other labels stay. Draft update
  and draft send replace the draft's message by a new one (new message id), as Gmail does.

The mailbox is plain data guarded by the owner's lock (``FakeGoogle``); it never speaks HTTP.
"""

from __future__ import annotations

import email.message
import email.utils
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import mime
from .errors import bad_request, conflict, not_found
from .search import Context, compile_query
from .util import Clock, IdSource

SYSTEM_LABELS: tuple[str, ...] = (
    "INBOX",
    "SENT",
    "DRAFT",
    "TRASH",
    "SPAM",
    "STARRED",
    "IMPORTANT",
    "UNREAD",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)
HIDDEN_SYSTEM = {"CHAT", "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS"}
HIDDEN_SYSTEM |= {"CATEGORY_UPDATES", "CATEGORY_FORUMS"}
SPAM_TRASH = {"SPAM", "TRASH"}
HISTORY_TYPES = ("messagesAdded", "messagesDeleted", "labelsAdded", "labelsRemoved")


@dataclass
class Label:
    """A Gmail label (``Label`` schema)."""

    id: str
    name: str
    type: str = "user"
    message_list_visibility: str | None = "show"
    label_list_visibility: str | None = "labelShow"
    color: dict[str, str] | None = None

    def brief(self) -> dict[str, Any]:
        """The fields ``labels.list`` returns (id, name, visibilities, type, color)."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.message_list_visibility:
            out["messageListVisibility"] = self.message_list_visibility
        if self.label_list_visibility:
            out["labelListVisibility"] = self.label_list_visibility
        out["type"] = self.type
        if self.color:
            out["color"] = self.color
        return out


@dataclass(eq=False)
class StoredMessage:
    """A stored message: exact bytes plus Gmail's metadata."""

    id: str
    thread_id: str
    raw: bytes
    labels: list[str]
    internal_date: int
    history_id: int
    _parsed: email.message.Message | None = field(default=None, repr=False)
    _text: str | None = field(default=None, repr=False)

    @property
    def parsed(self) -> email.message.Message:
        """The parsed MIME tree (cached)."""
        if self._parsed is None:
            self._parsed = mime.parse(self.raw)
        return self._parsed

    def snapshot(self) -> dict[str, Any]:
        """``{id, threadId, labelIds}`` as history records show a message."""
        return {"id": self.id, "threadId": self.thread_id, "labelIds": list(self.labels)}

    # -- search.Searchable ------------------------------------------------------------------
    def header_text(self, name: str) -> str:
        return " ".join(mime.decode_value(v) for v in self.parsed.get_all(name, []))

    def address_text(self, *names: str) -> str:
        return " ".join(self.header_text(n) for n in names)

    def full_text(self) -> str:
        if self._text is None:
            parts = [
                self.header_text("Subject"),
                self.address_text("From", "To", "Cc"),
                mime.body_text(self.parsed),
                " ".join(mime.attachment_names(self.parsed)),
            ]
            self._text = "\n".join(parts)
        return self._text

    def label_ids(self) -> set[str]:
        return set(self.labels)

    def size(self) -> int:
        return len(self.raw)

    def internal_date_ms(self) -> int:
        return self.internal_date

    def message_id(self) -> str:
        return self.header_text("Message-ID").strip()

    def attachment_names(self) -> list[str]:
        return mime.attachment_names(self.parsed)


@dataclass
class Watch:
    """An active ``users.watch``."""

    topic: str
    label_ids: list[str]
    behavior: str
    expiration_ms: int


ChangeHook = Callable[["Mailbox", set[str]], None]


class Mailbox:
    """The state of one Gmail user."""

    def __init__(
        self,
        email_address: str,
        ids: IdSource,
        clock: Clock,
        on_change: ChangeHook,
        history_retention: int | None = None,
    ) -> None:
        self.email = email_address
        self._ids = ids
        self._clock = clock
        self._on_change = on_change
        self.history_retention = history_retention
        self.labels: dict[str, Label] = {}
        for label_id in SYSTEM_LABELS:
            hidden = label_id in HIDDEN_SYSTEM
            self.labels[label_id] = Label(
                label_id,
                label_id,
                "system",
                "hide" if hidden else None,
                "labelHide" if hidden else None,
            )
        self.messages: dict[str, StoredMessage] = {}
        self.drafts: dict[str, str] = {}
        self.history: list[dict[str, Any]] = []
        self.history_id = 1000 + ids.gap() * 97
        self.history_floor = self.history_id
        self.watch: Watch | None = None
        self._next_label = 1
        self._by_message_id: dict[str, set[str]] = {}

    # -- history ---------------------------------------------------------------------------
    def _record(
        self, entries: dict[str, list[dict[str, Any]]], touched: list[StoredMessage]
    ) -> int:
        self.history_id += self._ids.gap()
        record: dict[str, Any] = {"id": str(self.history_id)}
        record["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in touched]
        record.update({k: v for k, v in entries.items() if v})
        self.history.append(record)
        if self.history_retention is not None and len(self.history) > self.history_retention:
            dropped = self.history[: len(self.history) - self.history_retention]
            del self.history[: len(dropped)]
            self.history_floor = int(dropped[-1]["id"])
        for message in touched:
            message.history_id = self.history_id
        involved: set[str] = set()
        for items in entries.values():
            for item in items:
                involved.update(item["message"].get("labelIds", []))
                involved.update(item.get("labelIds", []))
        self._on_change(self, involved)
        return self.history_id

    def expire_history(self) -> None:
        """Forget every record: only the current historyId stays a valid start."""
        self.history.clear()
        self.history_floor = self.history_id

    def list_history(
        self, start: int, types: Iterable[str] | None, label_id: str | None
    ) -> list[dict[str, Any]]:
        """Records after ``start`` (404 below the floor), filtered as ``history.list`` documents."""
        if start < self.history_floor:
            raise not_found()
        names = {"messageAdded": "messagesAdded", "messageDeleted": "messagesDeleted"}
        names |= {"labelAdded": "labelsAdded", "labelRemoved": "labelsRemoved"}
        wanted = {names.get(t, t) for t in types or ()} or set(HISTORY_TYPES)
        out: list[dict[str, Any]] = []
        for record in self.history:
            if int(record["id"]) <= start:
                continue
            kept: dict[str, Any] = {}
            for kind in HISTORY_TYPES:
                items = record.get(kind, [])
                if kind not in wanted:
                    continue
                if label_id:
                    items = [
                        i
                        for i in items
                        if label_id in i["message"].get("labelIds", [])
                        or label_id in i.get("labelIds", [])
                    ]
                if items:
                    kept[kind] = items
            if not kept:
                continue
            ids = {i["message"]["id"] for items in kept.values() for i in items}
            messages = [m for m in record["messages"] if m["id"] in ids]
            out.append({"id": record["id"], "messages": messages, **kept})
        return out

    # -- labels ----------------------------------------------------------------------------
    def label(self, label_id: str) -> Label:
        """A label by id (404 if unknown)."""
        try:
            return self.labels[label_id]
        except KeyError:
            raise not_found() from None

    def label_name_map(self) -> dict[str, str]:
        """Lower-cased label name (and its dashed form) → id, for ``label:`` in ``q``."""
        names: dict[str, str] = {}
        for label in self.labels.values():
            low = label.name.lower()
            names[low] = label.id
            names[low.replace(" ", "-").replace("/", "-")] = label.id
            names[label.id.lower()] = label.id
        return names

    def label_counts(self, label_id: str) -> dict[str, int]:
        """messagesTotal / messagesUnread / threadsTotal / threadsUnread of one label."""
        total = unread = 0
        threads: set[str] = set()
        unread_threads: set[str] = set()
        for message in self.messages.values():
            labels = set(message.labels)
            if label_id not in labels:
                continue
            if label_id not in SPAM_TRASH and labels & SPAM_TRASH:
                continue
            total += 1
            threads.add(message.thread_id)
            if "UNREAD" in labels:
                unread += 1
                unread_threads.add(message.thread_id)
        return {
            "messagesTotal": total,
            "messagesUnread": unread,
            "threadsTotal": len(threads),
            "threadsUnread": len(unread_threads),
        }

    def label_full(self, label_id: str) -> dict[str, Any]:
        """``labels.get``: the label with its counters."""
        return {**self.label(label_id).brief(), **self.label_counts(label_id)}

    def _check_name(self, name: Any, exclude: str | None = None) -> str:
        if not isinstance(name, str) or not name.strip():
            raise bad_request("Invalid label name")
        name = name.strip()
        if name.upper() in SYSTEM_LABELS or name.lower() in {"all mail", "chats", "snoozed"}:
            raise bad_request("Invalid label name")
        for label in self.labels.values():
            if label.id != exclude and label.name.lower() == name.lower():
                raise conflict("Label name exists or conflicts")
        return name

    def create_label(self, body: dict[str, Any]) -> Label:
        """``labels.create``."""
        name = self._check_name(body.get("name"))
        label = Label(f"Label_{self._next_label}", name)
        self._next_label += 1
        self._apply_label_fields(label, body)
        self.labels[label.id] = label
        return label

    def update_label(self, label_id: str, body: dict[str, Any], *, patch: bool) -> Label:
        """``labels.update`` (PUT: name required) and ``labels.patch``."""
        label = self.label(label_id)
        if label.type == "system":
            raise bad_request("Invalid update request")
        if "name" in body or not patch:
            label.name = self._check_name(body.get("name"), exclude=label.id)
        self._apply_label_fields(label, body)
        return label

    @staticmethod
    def _apply_label_fields(label: Label, body: dict[str, Any]) -> None:
        if "messageListVisibility" in body:
            if body["messageListVisibility"] not in {"show", "hide"}:
                raise bad_request("Invalid messageListVisibility")
            label.message_list_visibility = body["messageListVisibility"]
        if "labelListVisibility" in body:
            if body["labelListVisibility"] not in {"labelShow", "labelShowIfUnread", "labelHide"}:
                raise bad_request("Invalid labelListVisibility")
            label.label_list_visibility = body["labelListVisibility"]
        if "color" in body:
            label.color = body["color"] or None

    def delete_label(self, label_id: str) -> None:
        """``labels.delete``: removes the label from every message (recorded as labelsRemoved)."""
        label = self.label(label_id)
        if label.type == "system":
            raise bad_request("Invalid delete request")
        affected = [m for m in self.messages.values() if label_id in m.labels]
        for message in affected:
            message.labels.remove(label_id)
        del self.labels[label_id]
        if affected:
            items = [{"message": m.snapshot(), "labelIds": [label_id]} for m in affected]
            self._record({"labelsRemoved": items}, affected)

    def check_label_ids(self, label_ids: Iterable[str]) -> list[str]:
        """Known label ids, in order and deduplicated (400 ``Invalid label`` otherwise)."""
        out: list[str] = []
        for label_id in label_ids:
            if label_id not in self.labels:
                raise bad_request(f"Invalid label: {label_id}")
            if label_id not in out:
                out.append(label_id)
        return out

    # -- messages --------------------------------------------------------------------------
    def message(self, message_id: str) -> StoredMessage:
        """A message by id (404 if unknown; 400 for ids that cannot be Gmail ids)."""
        if not message_id or not all(c in "0123456789abcdef" for c in message_id.lower()):
            raise bad_request("Invalid id value")
        try:
            return self.messages[message_id]
        except KeyError:
            raise not_found() from None

    def thread_messages(self, thread_id: str) -> list[StoredMessage]:
        """Messages of a thread, oldest first (404 if none)."""
        found = [m for m in self.messages.values() if m.thread_id == thread_id]
        if not found:
            raise not_found()
        return sorted(found, key=lambda m: (m.internal_date, m.id))

    def _thread_for(self, parsed: email.message.Message, requested: str | None) -> str | None:
        refs = mime.message_ids(mime.header(parsed, "In-Reply-To"))
        refs += mime.message_ids(mime.header(parsed, "References"))
        subject = mime.normalized_subject(mime.header(parsed, "Subject"))
        candidates: list[StoredMessage] = []
        for ref in refs:
            for stored_id in self._by_message_id.get(ref.lower(), ()):
                stored = self.messages.get(stored_id)
                if stored and mime.normalized_subject(stored.header_text("Subject")) == subject:
                    candidates.append(stored)
        if requested:
            return requested if any(c.thread_id == requested for c in candidates) else None
        if candidates:
            return max(candidates, key=lambda m: m.internal_date).thread_id
        return None

    def add(
        self,
        raw: bytes,
        label_ids: Iterable[str],
        *,
        thread_id: str | None = None,
        internal_date: int | None = None,
        date_from_header: bool = False,
    ) -> StoredMessage:
        """Store a message (insert, import, send, draft, delivery) and record messagesAdded."""
        if not raw.strip():
            raise bad_request("Invalid raw message", reason="invalidArgument")
        labels = self.check_label_ids(label_ids)
        parsed = mime.parse(raw)
        if internal_date is None:
            internal_date = self._clock.now_ms()
            if date_from_header and parsed.get("Date"):
                try:
                    when = email.utils.parsedate_to_datetime(str(parsed["Date"]))
                    internal_date = int(when.timestamp() * 1000)
                except (TypeError, ValueError, IndexError):
                    pass
        message_id = self._ids.message_id()
        thread = self._thread_for(parsed, thread_id) or message_id
        stored = StoredMessage(message_id, thread, raw, labels, internal_date, 0, parsed)
        self.messages[message_id] = stored
        header_id = stored.message_id().lower()
        if header_id:
            self._by_message_id.setdefault(header_id, set()).add(message_id)
        self._record({"messagesAdded": [{"message": stored.snapshot()}]}, [stored])
        return stored

    def modify(
        self, message_ids: Iterable[str], add: Iterable[str], remove: Iterable[str]
    ) -> list[StoredMessage]:
        """Add/remove labels on messages; one history record for the whole call."""
        add_ids = self.check_label_ids(add)
        remove_ids = self.check_label_ids(remove)
        if "DRAFT" in add_ids or "DRAFT" in remove_ids:
            raise bad_request("Invalid label: DRAFT")
        messages = [self.message(mid) for mid in dict.fromkeys(message_ids)]
        added: list[dict[str, Any]] = []
        removed: list[dict[str, Any]] = []
        touched: list[StoredMessage] = []
        for message in messages:
            plus = [lab for lab in add_ids if lab not in message.labels and lab not in remove_ids]
            minus = [lab for lab in remove_ids if lab in message.labels]
            if "TRASH" in plus and "SPAM" in message.labels and "SPAM" not in minus:
                minus.append("SPAM")
            if "SPAM" in plus and "TRASH" in message.labels and "TRASH" not in minus:
                minus.append("TRASH")
            for lab in minus:
                message.labels.remove(lab)
            message.labels.extend(plus)
            if plus:
                added.append({"message": message.snapshot(), "labelIds": plus})
            if minus:
                removed.append({"message": message.snapshot(), "labelIds": minus})
            if plus or minus:
                touched.append(message)
        if touched:
            self._record({"labelsAdded": added, "labelsRemoved": removed}, touched)
        return messages

    def delete(self, message_ids: Iterable[str], *, strict: bool = True) -> None:
        """Delete permanently; one ``messagesDeleted`` record (unknown ids: 404 if ``strict``)."""
        doomed: list[StoredMessage] = []
        for mid in dict.fromkeys(message_ids):
            if mid in self.messages:
                doomed.append(self.messages[mid])
            elif strict:
                self.message(mid)
        for message in doomed:
            del self.messages[message.id]
            refs = self._by_message_id.get(message.message_id().lower())
            if refs:
                refs.discard(message.id)
            for draft_id, draft_message in list(self.drafts.items()):
                if draft_message == message.id:
                    del self.drafts[draft_id]
        if doomed:
            items = [{"message": m.snapshot()} for m in doomed]
            self._record({"messagesDeleted": items}, doomed)

    def search(
        self,
        q: str | None,
        label_ids: Iterable[str] = (),
        include_spam_trash: bool = False,
    ) -> list[StoredMessage]:
        """Messages matching ``labelIds`` (all of them) and ``q``, newest first."""
        from .search import QueryError, mentions_spam_or_trash

        wanted = list(label_ids)
        include = include_spam_trash or bool(set(wanted) & SPAM_TRASH)
        include = include or bool(q and mentions_spam_or_trash(q))
        try:
            predicate = compile_query(q) if q else None
        except QueryError as exc:
            raise bad_request(f"Invalid query: {exc}") from None
        ctx = Context(self.email, self.label_name_map(), self._clock.now_ms())
        out: list[StoredMessage] = []
        for message in self.messages.values():
            labels = set(message.labels)
            if not include and labels & SPAM_TRASH:
                continue
            if any(lab not in labels for lab in wanted):
                continue
            if predicate is not None and not predicate(message, ctx):
                continue
            out.append(message)
        out.sort(key=lambda m: (m.internal_date, m.id), reverse=True)
        return out

    def threads_total(self) -> int:
        """Number of threads in the mailbox."""
        return len({m.thread_id for m in self.messages.values()})
