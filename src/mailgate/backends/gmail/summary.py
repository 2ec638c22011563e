"""A message summary (listing entry, ``messageNew`` payload) from a Gmail message resource.

Pure. Listings and change events fetch messages with ``format=metadata`` and only the headers
in :data:`SUMMARY_HEADERS` (one ``messages.get`` each, batched): no body is downloaded to list
mail. Message ids, ``emailId`` and ``threadId`` are Gmail's own. Attachment and text ids are
``base64url(message id "/" part numbers)`` with IMAP part numbers, the numbering the MIME parser
gives every message, so they stay valid across responses (Gmail's own attachment ids do not).
"""

from __future__ import annotations

import base64
import binascii
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
