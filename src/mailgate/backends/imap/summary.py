"""A message summary (the listing entry and ``messageNew`` payload) from one IMAP FETCH.

Everything comes from one pipelined ``UID FETCH`` of envelope, flags, size, internal date and
BODYSTRUCTURE (:data:`SUMMARY_ITEMS`): no message body is downloaded to list messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailgate.domain.ids import pack_attachment_id, pack_message_id, pack_text_id
from mailgate.protocols.imap import Address, BodyStructure, Envelope, FetchResponse

SUMMARY_ITEMS = ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE")
OBJECTID_ITEMS = ("EMAILID", "THREADID")
GMAIL_ITEMS = ("X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS")

TEXT_SUBTYPES = ("plain", "html")


def summary_items(capabilities: frozenset[str]) -> tuple[str, ...]:
    items: tuple[str, ...] = SUMMARY_ITEMS
    if "CONDSTORE" in capabilities:
        items += ("MODSEQ",)
    if "OBJECTID" in capabilities:
        items += OBJECTID_ITEMS
    if "X-GM-EXT-1" in capabilities:
        items += GMAIL_ITEMS
    return items


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def address(a: Address) -> dict[str, str]:
    out = {"address": a.email}
    if a.name:
        out["name"] = a.name
    return out


def addresses(items: tuple[Address, ...]) -> list[dict[str, str]]:
    return [address(a) for a in items if a.email or a.name]


def _is_attachment_disposition(part: BodyStructure) -> bool:
    return (part.disposition or "").lower() == "attachment"


def text_parts(root: BodyStructure) -> dict[str, BodyStructure]:
    """The body texts: the first text/plain and text/html not marked as attachments.

    Parts inside an attached message/rfc822 are that message's own, not this one's.
    """
    found: dict[str, BodyStructure] = {}

    def visit(part: BodyStructure) -> None:
        if part.is_multipart:
            for child in part.children:
                visit(child)
            return
        if (
            part.type == "text"
            and part.subtype in TEXT_SUBTYPES
            and not _is_attachment_disposition(part)
            and part.subtype not in found
        ):
            found[part.subtype] = part

    visit(root)
    return found


def attachment_parts(root: BodyStructure) -> list[tuple[BodyStructure, bool]]:
    """Leaf parts that are attachments, with ``encodedInMessage`` (inside a message/rfc822)."""
    texts = {p.part for p in text_parts(root).values()}
    out: list[tuple[BodyStructure, bool]] = []

    def visit(part: BodyStructure, enclosed: bool) -> None:
        if part.is_multipart:
            for child in part.children:
                visit(child, enclosed)
            return
        if part.part in texts:
            return
        if part.type == "message" and part.subtype in ("rfc822", "global"):
            out.append((part, enclosed))
            return
        if (
            part.type == "text"
            and part.subtype in TEXT_SUBTYPES
            and not (_is_attachment_disposition(part) or part.filename)
        ):
            return  # an alternative body text beyond the first (not an attachment)
        out.append((part, enclosed))

    visit(root, False)
    return out


def attachment_entry(mailbox_no: int, uid: int, part: BodyStructure) -> dict[str, Any]:
    content_id = part.id.strip() if part.id else None
    entry: dict[str, Any] = {
        "id": pack_attachment_id(mailbox_no, uid, part.part),
        "contentType": part.content_type,
        "encodedSize": part.size or 0,
        "embedded": bool(content_id) and (part.disposition or "").lower() != "attachment",
        "inline": (part.disposition or "").lower() == "inline",
    }
    if part.filename:
        entry["filename"] = part.filename
    if content_id:
        entry["contentId"] = content_id if content_id.startswith("<") else f"<{content_id}>"
    if part.content_type == "text/calendar" and part.params.get("method"):
        entry["method"] = part.params["method"].upper()
    return entry


def summarize(
    fetch: FetchResponse,
    mailbox_no: int,
    *,
    path: str | None = None,
    special_use: str | None = None,
) -> dict[str, Any]:
    uid = fetch.uid
    if uid is None:
        raise ValueError("a FETCH response without UID cannot be summarized")
    flags = list(fetch.flags or ())
    lowered = {f.lower() for f in flags}
    env: Envelope | None = fetch.envelope
    out: dict[str, Any] = {
        "id": pack_message_id(mailbox_no, uid),
        "uid": uid,
    }
    if path is not None:
        out["path"] = path
    if fetch.email_id:
        out["emailId"] = fetch.email_id
    if fetch.thread_id:
        out["threadId"] = fetch.thread_id
    out["date"] = iso(fetch.internaldate or (env.date if env else None))
    out["flags"] = flags
    if "\\draft" in lowered:
        out["draft"] = True
    out["unseen"] = "\\seen" not in lowered
    if "\\flagged" in lowered:
        out["flagged"] = True
    if "\\answered" in lowered:
        out["answered"] = True
    labels = fetch.attrs.get("X-GM-LABELS")
    if labels:
        out["labels"] = list(labels)
    if fetch.size is not None:
        out["size"] = fetch.size
    if env is not None:
        if env.subject is not None:
            out["subject"] = env.subject
        if env.from_:
            out["from"] = address(env.from_[0])
        if env.sender:
            out["sender"] = address(env.sender[0])
        for key, value in (
            ("replyTo", env.reply_to),
            ("to", env.to),
            ("cc", env.cc),
            ("bcc", env.bcc),
        ):
            if value:
                out[key] = addresses(value)
        if env.message_id:
            out["messageId"] = env.message_id
        if env.in_reply_to:
            out["inReplyTo"] = env.in_reply_to
    if special_use:
        out["messageSpecialUse"] = special_use
    root = fetch.bodystructure
    if root is not None:
        out["attachments"] = [
            {
                **attachment_entry(mailbox_no, uid, part),
                **({"encodedInMessage": True} if enc else {}),
            }
            for part, enc in attachment_parts(root)
        ]
        texts = text_parts(root)
        if texts:
            out["text"] = {
                "id": pack_text_id(
                    mailbox_no, uid, [texts[k].part for k in TEXT_SUBTYPES if k in texts]
                ),
                "encodedSize": {k: texts[k].size or 0 for k in TEXT_SUBTYPES if k in texts},
            }
    return out
