"""A message summary (listing entry, ``messageNew`` payload) from a Gmail message resource.

Pure. Listings and change events fetch messages with ``format=full`` restricted by ``fields``
to the MIME tree without any body data (:data:`SUMMARY_FIELDS`: part types, filenames, part
headers and ``body.size``; one ``messages.get`` each, batched, 5 quota units as for
``format=metadata``): no body is downloaded to list mail, and the entry carries the same
``attachments[]`` and ``text{id, encodedSize}`` as an IMAP account's (:func:`structure_fields`).

Message ids, ``emailId`` and ``threadId`` are Gmail's own. Attachment and text ids are
``base64url(message id "/" part numbers)`` with IMAP part numbers, the numbering the MIME parser
gives every message, so they stay valid across responses (Gmail's own attachment ids change on
every response; the download resolves the current one then).
"""

from __future__ import annotations

import base64
import binascii
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mailgate.backends.gmail.labels import LabelSet, flags_of
from mailgate.domain.ids import is_part_number
from mailgate.errors import NotFound
from mailgate.protocols.mime import decode_header_value, parse_addresses
from mailgate.protocols.mime.headers import parse_message_id

SUMMARY_HEADERS = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "Date",
)
#: Nesting depth of MIME parts :data:`SUMMARY_FIELDS` names field by field (deeper parts come
#: whole, inline text data included: correct, only bigger).
PART_DEPTH = 6
#: ``category`` of a message from its Gmail category label (Gmail API accounts).
CATEGORIES = {
    "CATEGORY_PERSONAL": "primary",
    "CATEGORY_SOCIAL": "social",
    "CATEGORY_PROMOTIONS": "promotions",
    "CATEGORY_UPDATES": "updates",
    "CATEGORY_FORUMS": "forums",
}
BASE64_LINE = 76


def _part_fields(depth: int) -> str:
    own = "partId,mimeType,filename,headers,body/size"
    return f"{own},parts" if depth <= 0 else f"{own},parts({_part_fields(depth - 1)})"


#: ``fields`` of a summary's ``messages.get`` (``format=full``): no body data, no attachment ids.
SUMMARY_FIELDS = (
    "id,threadId,labelIds,snippet,sizeEstimate,internalDate,historyId,"
    f"payload({_part_fields(PART_DEPTH)})"
)
#: Longest Gmail message id accepted from a client (they are 16 hex digits today).
MAX_GMAIL_ID = 64
MAX_PARTS_IN_ID = 16
_GMAIL_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_message_id(message: str) -> str:
    """A client's message id, or NotFound (it goes into request paths)."""
    if not isinstance(message, str) or not _GMAIL_ID_RE.fullmatch(message):
        raise NotFound("Requested message was not found", "MessageNotFound")
    return message


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")


def pack_part_id(message: str, parts: Sequence[str]) -> str:
    """Attachment id (one part) or text id (several) of a Gmail message."""
    return _b64(f"{message}/{','.join(parts)}")


def unpack_part_id(value: str, code: str) -> tuple[str, list[str]]:
    """(message id, part numbers) of an attachment or text id; NotFound ``code`` if malformed."""
    error = NotFound("Requested item was not found", code)
    if not isinstance(value, str) or len(value) > 4 * (MAX_GMAIL_ID + 16 * 130) // 3 + 4:
        raise error
    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise error from None
    message, sep, tail = decoded.partition("/")
    parts = tail.split(",") if tail else []
    if (
        not sep
        or not _GMAIL_ID_RE.fullmatch(message)
        or not parts
        or len(parts) > MAX_PARTS_IN_ID
        or not all(is_part_number(p) for p in parts)
    ):
        raise error
    return message, parts


def iso_ms(millis: str | int | None) -> str | None:
    if millis is None or millis == "":
        return None
    try:
        value = int(millis)
    except (TypeError, ValueError):
        return None
    dt = datetime.fromtimestamp(value / 1000, UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def header_map(resource: Mapping[str, Any]) -> dict[str, list[str]]:
    """Lower-case header name -> raw values of a metadata/full message resource."""
    out: dict[str, list[str]] = {}
    payload = resource.get("payload") or {}
    for item in payload.get("headers") or []:
        name = str(item.get("name", "")).lower()
        if name:
            out.setdefault(name, []).append(str(item.get("value", "")))
    return out


def _addresses(values: Iterable[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for value in values:
        for addr in parse_addresses(value):
            if addr.address or addr.name:
                out.append(addr.to_contract())
    return out


def summarize(
    resource: Mapping[str, Any],
    labels: LabelSet,
    *,
    path: str | None = None,
    special_use: str | None = None,
) -> dict[str, Any]:
    """The contract's message entry of a Gmail message (``format=metadata`` or ``raw``)."""
    message_id = str(resource.get("id", ""))
    label_ids = [str(x) for x in resource.get("labelIds") or []]
    flags = flags_of(label_ids)
    out: dict[str, Any] = {"id": message_id, "emailId": message_id}
    if path is not None:
        out["path"] = path
    if resource.get("threadId"):
        out["threadId"] = str(resource["threadId"])
    out["date"] = iso_ms(resource.get("internalDate"))
    out["flags"] = flags
    if "\\Draft" in flags:
        out["draft"] = True
    out["unseen"] = "\\Seen" not in flags
    if "\\Flagged" in flags:
        out["flagged"] = True
    shown = labels.shown_labels(label_ids)
    if shown:
        out["labels"] = shown
    if resource.get("sizeEstimate") is not None:
        out["size"] = int(resource["sizeEstimate"])
    headers = header_map(resource)
    if headers:
        _header_fields(out, headers)
    if special_use:
        out["messageSpecialUse"] = special_use
    return out


def _header_fields(out: dict[str, Any], headers: Mapping[str, list[str]]) -> None:
    if "subject" in headers:
        out["subject"] = decode_header_value(headers["subject"][0])
    for key, name in (("from", "from"), ("sender", "sender")):
        found = _addresses(headers.get(name, [])[:1])
        if found:
            out[key] = found[0]
    for key, name in (("replyTo", "reply-to"), ("to", "to"), ("cc", "cc"), ("bcc", "bcc")):
        found = _addresses(headers.get(name, []))
        if found:
            out[key] = found
    message_id = parse_message_id(next(iter(headers.get("message-id", [])), None))
    if message_id:
        out["messageId"] = message_id
    in_reply_to = parse_message_id(next(iter(headers.get("in-reply-to", [])), None))
    if in_reply_to:
        out["inReplyTo"] = in_reply_to


def selected_headers(resource: Mapping[str, Any], wanted: Sequence[str]) -> dict[str, list[str]]:
    """``notifyHeaders``: the named (or, with ``*``, every) header, lower-case names."""
    names = {w.lower() for w in wanted}
    return {
        name: [" ".join(v.split()) for v in values]
        for name, values in header_map(resource).items()
        if "*" in names or name in names
    }


# -- MIME structure from a format=full payload (no body data) ---------------------------------
def _part_header(node: Mapping[str, Any], name: str) -> str | None:
    for item in node.get("headers") or []:
        if str(item.get("name", "")).lower() == name:
            return str(item.get("value", ""))
    return None


def _param(value: str | None, name: str) -> str | None:
    if not value:
        return None
    for piece in value.split(";")[1:]:
        key, sep, found = piece.strip().partition("=")
        if sep and key.strip().lower() == name:
            return found.strip().strip('"')
    return None


def encoded_size(node: Mapping[str, Any]) -> int:
    """Bytes a part's body takes in the message: Gmail gives the decoded size; base64 bodies
    are estimated as written (76-character lines), others are taken as they are."""
    size = int((node.get("body") or {}).get("size") or 0)
    encoding = (_part_header(node, "content-transfer-encoding") or "").strip().lower()
    if encoding != "base64" or size <= 0:
        return size
    chars = 4 * math.ceil(size / 3)
    return chars + 2 * math.ceil(chars / BASE64_LINE)


def _leaves(payload: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], bool]]:
    """(IMAP part number, part, inside multipart/related) of every leaf, in document order.

    ``message/rfc822`` parts are leaves (attachments), as the MIME parser counts them."""
    out: list[tuple[str, Mapping[str, Any], bool]] = []

    def visit(node: Mapping[str, Any], number: str, related: bool) -> None:
        mime_type = str(node.get("mimeType") or "").lower()
        children = node.get("parts") or []
        if mime_type.startswith("multipart/") and children:
            inner = related or mime_type == "multipart/related"
            for i, child in enumerate(children, start=1):
                visit(child, f"{number}.{i}" if number else str(i), inner)
            return
        out.append((number or "1", node, related))

    visit(payload, "", False)
    return out


def structure_fields(message_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``attachments`` and ``text {id, encodedSize}`` of a listing entry from a payload tree.

    The same split as the MIME parser's (details): body text is text/plain or text/html without
    ``Content-Disposition: attachment`` and without a filename; every other leaf is an
    attachment. ``embedded`` is guessed as IMAP listings do (a Content-ID not marked
    attachment): the HTML that would prove it is not downloaded."""
    attachments: list[dict[str, Any]] = []
    text_parts: list[str] = []
    sizes: dict[str, int] = {}
    for number, node, related in _leaves(payload):
        mime_type = str(node.get("mimeType") or "application/octet-stream").lower()
        filename = str(node.get("filename") or "")
        disposition_header = _part_header(node, "content-disposition")
        disposition = (
            disposition_header.split(";")[0].strip().lower() if disposition_header else None
        )
        if (
            mime_type in ("text/plain", "text/html")
            and disposition != "attachment"
            and not filename
        ):
            text_parts.append(number)
            key = "html" if mime_type == "text/html" else "plain"
            sizes[key] = sizes.get(key, 0) + encoded_size(node)
            continue
        content_id = (_part_header(node, "content-id") or "").strip().strip("<>").strip()
        entry: dict[str, Any] = {
            "id": pack_part_id(message_id, [number]),
            "contentType": mime_type,
            "encodedSize": encoded_size(node),
        }
        if filename:
            entry["filename"] = filename
        entry["embedded"] = bool(content_id) and disposition != "attachment"
        entry["inline"] = disposition == "inline" or (
            related and mime_type.startswith("image/") and disposition is None
        )
        if content_id:
            entry["contentId"] = f"<{content_id}>"
        method = _param(_part_header(node, "content-type"), "method")
        if mime_type == "text/calendar" and method:
            entry["method"] = method.upper()
        attachments.append(entry)
    out: dict[str, Any] = {"attachments": attachments}
    if text_parts:
        out["text"] = {"id": pack_part_id(message_id, text_parts), "encodedSize": sizes}
    return out


def listing_entry(
    resource: Mapping[str, Any],
    labels: LabelSet,
    *,
    path: str | None = None,
    special_use: str | None = None,
) -> dict[str, Any]:
    """A listing entry / ``messageNew`` payload of a :data:`SUMMARY_FIELDS` resource: the
    summary, its MIME structure, ``preview`` (Gmail's snippet) and the Gmail ``category``."""
    out = summarize(resource, labels, path=path, special_use=special_use)
    payload = resource.get("payload")
    if isinstance(payload, Mapping) and payload.get("mimeType"):
        out.update(structure_fields(str(resource.get("id", "")), payload))
    snippet = resource.get("snippet")
    if snippet:
        out["preview"] = html.unescape(str(snippet))
    for label_id in resource.get("labelIds") or []:
        category = CATEGORIES.get(str(label_id))
        if category is not None:
            out["category"] = category
            break
    return out
