"""The fake's mailbox state: users, folders, messages, attachments, change log.

Resources follow the Graph v1.0 reference:
- message: https://learn.microsoft.com/en-us/graph/api/resources/message?view=graph-rest-1.0
- mailFolder: https://learn.microsoft.com/en-us/graph/api/resources/mailfolder?view=graph-rest-1.0
- fileAttachment / itemAttachment:
  https://learn.microsoft.com/en-us/graph/api/resources/fileattachment?view=graph-rest-1.0
- ids: https://learn.microsoft.com/en-us/graph/outlook-immutable-id (a REST id changes when the
  item moves to another folder; an immutable id does not)
- single-value extended properties (``ext``, canonical id -> string value): see ``extended``

Nothing here does I/O or locking: the server holds one lock while it calls into this module.
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.message import Message as StdMessage
from email.parser import BytesParser
from typing import Any

from tests.fakes.graph.errors import bad_request, not_found

WELL_KNOWN: dict[str, str] = {
    # wellKnownName -> displayName (https://learn.microsoft.com/en-us/graph/api/resources/mailfolder)
    "inbox": "Inbox",
    "drafts": "Drafts",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
    "archive": "Archive",
    "outbox": "Outbox",
    "conversationhistory": "Conversation History",
}
ROOT = "msgfolderroot"

MESSAGE_PROPS: tuple[str, ...] = (
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
)
# selectable but not in the default projection
EXTRA_MESSAGE_PROPS: tuple[str, ...] = ("uniqueBody", "internetMessageHeaders", "id")
FOLDER_PROPS: tuple[str, ...] = (
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "isHidden",
)

_counter = itertools.count(1)


def now_iso() -> str:
    """Graph's DateTimeOffset form, UTC with a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(dt: datetime) -> str:
    """``dt`` in Graph's DateTimeOffset form."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 DateTimeOffset (``Z`` or an offset; no zone means UTC)."""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(
            f"Invalid date/time value '{value}'.", "ErrorInvalidUrlQueryFilter"
        ) from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def new_id(prefix: str) -> str:
    """An opaque id in the look of Exchange entry ids (base64 with ``-``/``_``, ``=`` padded)."""
    raw = next(_counter).to_bytes(6, "big") + os.urandom(27)
    return prefix + base64.urlsafe_b64encode(raw).decode()


def addr(name: str | None, address: str) -> dict[str, Any]:
    """A recipient: ``{"emailAddress": {"name", "address"}}``."""
    return {"emailAddress": {"name": name or address, "address": address}}


def _recipients(values: list[str]) -> list[dict[str, Any]]:
    return [addr(n or None, a) for n, a in email.utils.getaddresses(values) if a]


@dataclass
class Attachment:
    """A fileAttachment (bytes) or itemAttachment (an attached message's MIME)."""

    id: str
    name: str
    content_type: str
    content: bytes
    is_inline: bool = False
    content_id: str | None = None
    is_item: bool = False
    modified: str = field(default_factory=now_iso)

    def to_json(self, with_content: bool = True) -> dict[str, Any]:
        """fileAttachment / itemAttachment JSON (contentBytes only on fileAttachment)."""
        out: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.itemAttachment"
            if self.is_item
            else "#microsoft.graph.fileAttachment",
            "id": self.id,
            "lastModifiedDateTime": self.modified,
            "name": self.name,
            "contentType": self.content_type,
            "size": len(self.content),
            "isInline": self.is_inline,
        }
        if not self.is_item:
            out["contentId"] = self.content_id
            out["contentLocation"] = None
            if with_content:
                out["contentBytes"] = base64.b64encode(self.content).decode()
        return out


@dataclass
class Folder:
    """A mailFolder. Folder ids stay the same when a folder moves."""

    id: str
    display_name: str
    parent_id: str | None
    well_known: str | None = None
    is_hidden: bool = False


@dataclass
class Message:
    """A message. ``imm_id`` never changes; ``rest_id`` changes on every move."""

    imm_id: str
    rest_id: str
    folder_id: str
    subject: str = ""
    body_type: str = "text"
    body: str = ""
    from_: dict[str, Any] | None = None
    sender: dict[str, Any] | None = None
    to: list[dict[str, Any]] = field(default_factory=list)
    cc: list[dict[str, Any]] = field(default_factory=list)
    bcc: list[dict[str, Any]] = field(default_factory=list)
    reply_to: list[dict[str, Any]] = field(default_factory=list)
    received: str = field(default_factory=now_iso)
    sent: str | None = None
    created: str = field(default_factory=now_iso)
    modified: str = field(default_factory=now_iso)
    internet_message_id: str = ""
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    conversation_id: str = ""
    is_read: bool = False
    is_draft: bool = False
    importance: str = "normal"
    flag: dict[str, Any] = field(default_factory=lambda: {"flagStatus": "notFlagged"})
    categories: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes | None = None
    change_seq: int = 0
    version: int = 1
    ext: dict[str, str] = field(default_factory=dict)  # single-value extended properties
    reply_of: tuple[str, int] | None = None  # a reply/forward draft: (original imm_id, verb)

    # ---- derived values ----
    @property
    def has_attachments(self) -> bool:
        """True when a non-inline attachment exists (inline images do not count in Graph)."""
        return any(not a.is_inline for a in self.attachments)

    @property
    def change_key(self) -> str:
        return base64.b64encode(f"CQAAABYAAA{self.imm_id[-8:]}{self.version:08d}".encode()).decode()

    def body_text(self) -> str:
        """The body as plain text (tags dropped from HTML)."""
        if self.body_type == "html":
            return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", self.body)).strip()
        return self.body

    def mime(self) -> bytes:
        """The MIME source: byte-identical to what was stored, else built from the fields."""
        if self.raw is None:
            self.raw = build_mime(self)
        return self.raw

    def size(self) -> int:
        return len(self.mime())

    def to_json(
        self,
        *,
        msg_id: str,
        select: list[str] | None,
        folder_id: str,
        expand_attachments: bool,
        extended: list[str] | None = None,
    ) -> dict[str, Any]:
        """The message resource, limited to ``select`` (Graph always adds ``id`` and the etag),
        expanded with the ``extended`` properties the message has (canonical ids)."""
        full: dict[str, Any] = {
            "createdDateTime": self.created,
            "lastModifiedDateTime": self.modified,
            "changeKey": self.change_key,
            "categories": list(self.categories),
            "receivedDateTime": self.received,
            "sentDateTime": self.sent,
            "hasAttachments": self.has_attachments,
            "internetMessageId": self.internet_message_id,
            "subject": self.subject,
            "bodyPreview": self.body_text()[:255],
            "importance": self.importance,
            "parentFolderId": folder_id,
            "conversationId": self.conversation_id,
            "conversationIndex": base64.b64encode(self.conversation_id.encode()[:22]).decode(),
            "isDeliveryReceiptRequested": False,
            "isReadReceiptRequested": False,
            "isRead": self.is_read,
            "isDraft": self.is_draft,
            "webLink": f"https://outlook.office365.com/owa/?ItemID={msg_id}&exvsurl=1&viewmodel=ReadMessageItem",
            "inferenceClassification": "focused",
            "body": {"contentType": self.body_type, "content": self.body},
            "sender": self.sender,
            "from": self.from_,
            "toRecipients": self.to,
            "ccRecipients": self.cc,
            "bccRecipients": self.bcc,
            "replyTo": self.reply_to,
            "flag": dict(self.flag),
        }
        out: dict[str, Any] = {"@odata.etag": f'W/"{self.change_key}"', "id": msg_id}
        if select is None:
            out.update(full)
        else:
            for name in select:
                if name == "uniqueBody":
                    out[name] = {"contentType": self.body_type, "content": self.body}
                elif name == "internetMessageHeaders":
                    out[name] = [{"name": k, "value": v} for k, v in self.headers]
                elif name in full:
                    out[name] = full[name]
        if expand_attachments:
            out["attachments"] = [a.to_json() for a in self.attachments]
        found = [{"id": pid, "value": self.ext[pid]} for pid in extended or () if pid in self.ext]
        if found:  # a message without the property has no collection at all
            out["singleValueExtendedProperties"] = found
        return out


# ---- MIME in and out ---------------------------------------------------------------------


def _header(msg: StdMessage, name: str) -> str | None:
    try:
        value = msg.get(name)
    except (ValueError, IndexError, TypeError):
        raw = msg.get_all(name, failobj=[None])
        value = raw[0] if raw else None
    return None if value is None else str(value)


def _parts(part: StdMessage, out: list[StdMessage]) -> None:
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        out.append(part)
        return
    for sub in part.iter_parts() if isinstance(part, EmailMessage) else part.get_payload():
        _parts(sub, out)


def parse_mime(raw: bytes) -> dict[str, Any]:
    """Fields of a message from its MIME (headers, chosen body, attachments)."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    leaves: list[StdMessage] = []
    _parts(msg, leaves)
    html = next(
        (
            p
            for p in leaves
            if p.get_content_type() == "text/html" and p.get_content_disposition() != "attachment"
        ),
        None,
    )
    text = next(
        (
            p
            for p in leaves
            if p.get_content_type() == "text/plain" and p.get_content_disposition() != "attachment"
        ),
        None,
    )
    body_part = html or text
    body = ""
    if body_part is not None:
        try:
            body = str(body_part.get_content())
        except (LookupError, ValueError, KeyError):
            payload = body_part.get_payload(decode=True)
            body = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    attachments: list[Attachment] = []
    for p in leaves:
        if p is html or p is text:
            continue
        ctype = p.get_content_type()
        is_item = ctype == "message/rfc822"
        if is_item:
            inner = p.get_payload()
            content = inner[0].as_bytes() if isinstance(inner, list) and inner else b""
        else:
            payload = p.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else b""
        cid = _header(p, "Content-ID")
        attachments.append(
            Attachment(
                id=new_id("AAMkAGAtt"),
                name=p.get_filename() or ("Attached message" if is_item else "attachment"),
                content_type=ctype,
                content=content,
                is_inline=p.get_content_disposition() == "inline" and not is_item,
                content_id=cid.strip("<>") if cid else None,
                is_item=is_item,
            )
        )
    date = _header(msg, "Date")
    sent = None
    if date:
        try:
            sent = iso(email.utils.parsedate_to_datetime(date))
        except (TypeError, ValueError):
            sent = None
    from_list = _recipients([_header(msg, "From") or ""])
    sender_list = _recipients([_header(msg, "Sender") or ""]) or from_list
    refs = (_header(msg, "References") or "").split()
    return {
        "subject": _header(msg, "Subject") or "",
        "body_type": "html" if html is not None else "text",
        "body": body,
        "from_": from_list[0] if from_list else None,
        "sender": sender_list[0] if sender_list else None,
        "to": _recipients(msg.get_all("To") or []),
        "cc": _recipients(msg.get_all("Cc") or []),
        "bcc": _recipients(msg.get_all("Bcc") or []),
        "reply_to": _recipients(msg.get_all("Reply-To") or []),
        "sent": sent,
        "internet_message_id": (_header(msg, "Message-ID") or "").strip(),
        "in_reply_to": (_header(msg, "In-Reply-To") or "").strip() or None,
        "references": refs,
        "attachments": attachments,
        "headers": [(k, str(v)) for k, v in msg.raw_items()],
        "importance": {"high": "high", "low": "low", "1": "high", "5": "low"}.get(
            (_header(msg, "Importance") or _header(msg, "X-Priority") or "normal")
            .strip()
            .lower()[:4]
            .strip(),
            "normal",
        ),
    }


def _fmt(recipient: dict[str, Any] | None) -> str:
    if not recipient:
        return ""
    ea = recipient.get("emailAddress") or {}
    return email.utils.formataddr((ea.get("name") or "", ea.get("address") or ""))


def build_mime(m: Message) -> bytes:
    """RFC 5322 source for a message created through JSON (what Exchange would render)."""
    out = EmailMessage(policy=policy.SMTP)
    if m.from_:
        out["From"] = _fmt(m.from_)
    for name, values in (("To", m.to), ("Cc", m.cc), ("Bcc", m.bcc), ("Reply-To", m.reply_to)):
        if values:
            out[name] = ", ".join(_fmt(v) for v in values)
    out["Subject"] = m.subject
    when = m.sent or m.created
    out["Date"] = email.utils.format_datetime(parse_iso(when))
    out["Message-ID"] = m.internet_message_id
    if m.in_reply_to:
        out["In-Reply-To"] = m.in_reply_to
    if m.references:
        out["References"] = " ".join(m.references)
    if m.importance != "normal":
        out["Importance"] = m.importance
    out.set_content(m.body, subtype="html" if m.body_type == "html" else "plain")
    for a in m.attachments:
        if a.is_item:
            out.add_attachment(a.content, maintype="message", subtype="rfc822", filename=a.name)
        else:
            maintype, _, subtype = a.content_type.partition("/")
            out.add_attachment(
                a.content,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=a.name,
                disposition="inline" if a.is_inline else "attachment",
                cid=f"<{a.content_id}>" if a.content_id else None,
            )
    return out.as_bytes()


def new_message_id(domain: str) -> str:
    """An RFC 5322 Message-ID in Exchange Online's form."""
    return f"<{uuid.uuid4().hex.upper()}@{domain}>"


def new_conversation_id() -> str:
    return new_id("AAQkAG")


# ---- one mailbox -------------------------------------------------------------------------


@dataclass
class Removal:
    """A message that left a folder at change number ``seq``, with the ids it had there."""

    seq: int
    folder_id: str
    imm_id: str
    rest_id: str


@dataclass
class Mailbox:
    """One user's mailbox: folders, messages, and the change log delta queries read."""

    user_id: str
    upn: str
    mail: str
    display_name: str
    scopes: set[str] = field(default_factory=set)
    folders: dict[str, Folder] = field(default_factory=dict)
    well_known: dict[str, str] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)  # imm_id -> message
    rest_index: dict[str, str] = field(default_factory=dict)  # current rest id -> imm_id
    conversations: dict[str, str] = field(default_factory=dict)  # Message-ID -> conversationId
    seq: int = 0
    removals: list[Removal] = field(default_factory=list)
    delta_generation: int = 0

    def __post_init__(self) -> None:
        root = Folder(new_id("AAMkAGFld"), "Top of Information Store", None, ROOT)
        self.folders[root.id] = root
        self.well_known[ROOT] = root.id
        for name, display in WELL_KNOWN.items():
            f = Folder(new_id("AAMkAGFld"), display, root.id, name)
            self.folders[f.id] = f
            self.well_known[name] = f.id
        # soft-deleted items live outside the visible tree (not a child of msgfolderroot)
        bin_ = Folder(new_id("AAMkAGFld"), "Deletions", None, "recoverableitemsdeletions", True)
        self.folders[bin_.id] = bin_
        self.well_known[bin_.well_known or ""] = bin_.id

    # ---- folders ----
    def folder(self, ref: str) -> Folder:
        """A folder by id or well-known name (case-insensitive), else 404."""
        fid = self.well_known.get(ref.lower(), ref)
        f = self.folders.get(fid)
        if f is None:
            raise not_found()
        return f

    def children(self, folder_id: str, include_hidden: bool) -> list[Folder]:
        return [
            f
            for f in self.folders.values()
            if f.parent_id == folder_id and (include_hidden or not f.is_hidden)
        ]

    def in_folder(self, folder_id: str) -> list[Message]:
        return [m for m in self.messages.values() if m.folder_id == folder_id]

    def folder_json(self, f: Folder) -> dict[str, Any]:
        """mailFolder resource (v1.0 has no wellKnownName property; that is beta only)."""
        msgs = self.in_folder(f.id)
        return {
            "id": f.id,
            "displayName": f.display_name,
            "parentFolderId": f.parent_id,
            "childFolderCount": len(self.children(f.id, True)),
            "unreadItemCount": sum(1 for m in msgs if not m.is_read),
            "totalItemCount": len(msgs),
            "sizeInBytes": sum(m.size() for m in msgs),
            "isHidden": f.is_hidden,
        }

    def is_descendant(self, folder_id: str, ancestor_id: str) -> bool:
        cur: str | None = folder_id
        while cur is not None:
            if cur == ancestor_id:
                return True
            cur = self.folders[cur].parent_id
        return False

    # ---- messages ----
    def message(self, ref: str) -> Message:
        """A message by its current REST id or its immutable id, else 404 (an old REST id
        of a moved message is gone, as in Exchange)."""
        imm = ref if ref in self.messages else self.rest_index.get(ref)
        if imm is None or imm not in self.messages:
            raise not_found()
        return self.messages[imm]

    def touch(self, m: Message) -> None:
        """Record a change of ``m`` (for delta and the changeKey)."""
        self.seq += 1
        m.change_seq = self.seq
        m.version += 1
        m.modified = now_iso()

    def conversation_for(self, in_reply_to: str | None, references: list[str]) -> str:
        """The conversationId a new message joins: its parent's (In-Reply-To / References)."""
        for ref in ([in_reply_to] if in_reply_to else []) + list(reversed(references)):
            conv = self.conversations.get(ref)
            if conv:
                return conv
        return new_conversation_id()

    def add(self, m: Message) -> Message:
        """Store a new message (ids already set) and log it as created."""
        if not m.conversation_id:
            m.conversation_id = self.conversation_for(m.in_reply_to, m.references)
        if m.internet_message_id:
            self.conversations.setdefault(m.internet_message_id, m.conversation_id)
        self.messages[m.imm_id] = m
        self.rest_index[m.rest_id] = m.imm_id
        self.seq += 1
        m.change_seq = self.seq
        return m

    def new_message(self, folder_id: str, **fields: Any) -> Message:
        m = Message(
            imm_id=new_id("AAkALgAAAAAAHYQDEapmEc2byACqAC"),
            rest_id=new_id("AAMkAGMsg"),
            folder_id=folder_id,
        )
        for k, v in fields.items():
            setattr(m, k, v)
        return self.add(m)

    def from_mime(
        self, raw: bytes, folder_id: str, *, received: str | None = None, **extra: Any
    ) -> Message:
        fields = parse_mime(raw)
        if not fields["internet_message_id"]:
            fields["internet_message_id"] = new_message_id(self.mail.split("@")[-1])
        fields.update(extra)
        return self.new_message(folder_id, raw=raw, received=received or now_iso(), **fields)

    def remove(self, m: Message) -> None:
        """Delete ``m`` for good and log it."""
        self.seq += 1
        self.removals.append(Removal(self.seq, m.folder_id, m.imm_id, m.rest_id))
        del self.messages[m.imm_id]
        self.rest_index.pop(m.rest_id, None)

    def move(self, m: Message, folder_id: str) -> Message:
        """Move ``m``: its REST id changes, its immutable id does not."""
        if folder_id == m.folder_id:
            return m
        self.seq += 1
        self.removals.append(Removal(self.seq, m.folder_id, m.imm_id, m.rest_id))
        self.rest_index.pop(m.rest_id, None)
        m.rest_id = new_id("AAMkAGMsg")
        self.rest_index[m.rest_id] = m.imm_id
        m.folder_id = folder_id
        self.touch(m)
        return m

    def copy(self, m: Message, folder_id: str) -> Message:
        """A copy in ``folder_id``: new ids of both kinds, same conversation."""
        return self.new_message(
            folder_id,
            **{
                k: getattr(m, k)
                for k in (
                    "subject",
                    "body_type",
                    "body",
                    "from_",
                    "sender",
                    "to",
                    "cc",
                    "bcc",
                    "reply_to",
                    "received",
                    "sent",
                    "internet_message_id",
                    "in_reply_to",
                    "references",
                    "conversation_id",
                    "is_read",
                    "is_draft",
                    "importance",
                    "categories",
                    "headers",
                    "raw",
                )
            },
            flag=dict(m.flag),
            ext=dict(m.ext),
            attachments=[
                Attachment(**{**a.__dict__, "id": new_id("AAMkAGAtt")}) for a in m.attachments
            ],
        )
