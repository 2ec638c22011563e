"""Graph message JSON → the contract's listing entry / ``messageNew`` payload (pure: no I/O).

Ids are Graph immutable ids, passed through. Attachment and text ids are built from them with
separators Graph ids never contain (they are base64url with ``=`` padding)::

    attachment id   <message id> "." <Graph attachment id>     streamed from .../attachments/{id}/$value
                    <message id> "~" <MIME part number>        (a part Graph does not list) from $value
    text id         <message id> "~text"

Flags: ``isRead`` ↔ ``\\Seen``, ``flag.flagStatus == flagged`` ↔ ``\\Flagged``, ``isDraft`` ↔
``\\Draft``; labels are ``categories``. Graph v1.0 has no answered property: ``\\Answered`` is the
MAPI property PidTagLastVerbExecuted (``singleValueExtendedProperties`` id ``Integer 0x1081``)
holding 102 (reply) or 103 (reply all); 104 (forward) is not ``\\Answered``. It is read with
``$expand=singleValueExtendedProperties($filter=id eq 'Integer 0x1081')`` (Graph omits the
collection when the message has no such property) and written with a PATCH of
``singleValueExtendedProperties``; Graph documents no way to delete an extended property, so
removing ``\\Answered`` writes 0 (no verb). Sources:

- https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-get?view=graph-rest-1.0
- https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-post-singlevalueextendedproperties?view=graph-rest-1.0
- https://learn.microsoft.com/en-us/graph/api/resources/extended-properties-overview?view=graph-rest-1.0
  (the ``"{type} {proptag}"`` id form)
- https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/how-to-respond-to-email-messages-by-using-ews-in-exchange
  (PidTagLastVerbExecuted 0x1081: 102 reply, 103 reply all, 104 forward, set by Exchange when a
  reply or forward is sent)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mailgate.errors import NotFound
from mailgate.protocols.graph_query import ANSWERED_VERBS, LAST_VERB_ID, last_verb

#: Message properties a summary needs (``$select``).
SUMMARY_FIELDS = (
    "id,subject,from,sender,toRecipients,ccRecipients,bccRecipients,replyTo,receivedDateTime,"
    "sentDateTime,isRead,isDraft,flag,categories,conversationId,internetMessageId,"
    "hasAttachments,parentFolderId"
)
#: Attachment properties listed with a summary.
ATTACHMENT_FIELDS = "id,name,contentType,size,isInline"
EXPAND_ATTACHMENTS = f"attachments($select={ATTACHMENT_FIELDS})"
#: PidTagLastVerbExecuted's verbs (see above; its id, ``LAST_VERB_ID``, and the reader
#: :func:`last_verb` live in :mod:`mailgate.protocols.graph_query`, which searches by it).
VERB_NONE, VERB_REPLY, VERB_REPLY_ALL, VERB_FORWARD = 0, 102, 103, 104
REPLY_VERBS = frozenset(ANSWERED_VERBS)
#: The one extended property a summary needs (``\\Answered``).
EXPAND_LAST_VERB = f"singleValueExtendedProperties($filter=id eq '{LAST_VERB_ID}')"
#: ``$expand`` of a listing entry / message: attachment metadata and the last verb.
EXPAND_SUMMARY = f"{EXPAND_ATTACHMENTS},{EXPAND_LAST_VERB}"
TEXT_SUFFIX = "~text"
MAX_ID_LENGTH = 1024
_GRAPH_ID = re.compile(r"[A-Za-z0-9_=+/-]{1,1024}")

SEEN, ANSWERED, FLAGGED, DRAFT = "\\Seen", "\\Answered", "\\Flagged", "\\Draft"


def _missing(code: str) -> NotFound:
    text = (
        "Requested attachment was not found"
        if code == "AttachmentNotFound"
        else ("Requested message was not found")
    )
    return NotFound(text, code)


def check_message_id(value: str, code: str = "MessageNotFound") -> str:
    """A client-sent Graph id, or NotFound (never a malformed URL toward Graph)."""
    if not _GRAPH_ID.fullmatch(value) or "/" in value:
        raise _missing(code)
    return value


def attachment_id(message: str, graph_attachment: str) -> str:
    return f"{message}.{graph_attachment}"


def part_attachment_id(message: str, part: str) -> str:
    return f"{message}~{part}"


def text_id(message: str) -> str:
    return message + TEXT_SUFFIX


def split_attachment_id(value: str) -> tuple[str, str | None, str | None]:
    """``(message id, Graph attachment id, MIME part)`` of an attachment id; NotFound else."""
    if len(value) > 2 * MAX_ID_LENGTH:
        raise _missing("AttachmentNotFound")
    if "~" in value:
        message, _, part = value.partition("~")
        check_message_id(message, "AttachmentNotFound")
        if not re.fullmatch(r"[1-9][0-9]{0,4}(\.[1-9][0-9]{0,4}){0,32}", part):
            raise _missing("AttachmentNotFound")
        return message, None, part
    if "." in value:
        message, _, att = value.partition(".")
        check_message_id(message, "AttachmentNotFound")
        check_message_id(att, "AttachmentNotFound")
        return message, att, None
    raise _missing("AttachmentNotFound")


def split_text_id(value: str) -> str:
    if not value.endswith(TEXT_SUFFIX):
        raise _missing("MessageNotFound")
    return check_message_id(value[: -len(TEXT_SUFFIX)])


# -- flags ---------------------------------------------------------------------------------------


def query_value(value: str) -> str:
    """``value`` percent-encoded for a URL written by hand (a ``$batch`` part, a delta link)."""
    return quote(value, safe="$(),=")


def is_answered(row: Mapping[str, Any]) -> bool:
    return last_verb(row) in REPLY_VERBS


def verb_patch(verb: int) -> dict[str, Any]:
    """The PATCH body that sets PidTagLastVerbExecuted to ``verb``."""
    return {"singleValueExtendedProperties": [{"id": LAST_VERB_ID, "value": str(verb)}]}


def flags_of(row: Mapping[str, Any]) -> list[str]:
    flags = []
    if row.get("isRead"):
        flags.append(SEEN)
    if is_answered(row):
        flags.append(ANSWERED)
    if ((row.get("flag") or {}).get("flagStatus") or "") == "flagged":
        flags.append(FLAGGED)
    if row.get("isDraft"):
        flags.append(DRAFT)
    return flags


def categories_of(row: Mapping[str, Any]) -> list[str]:
    return [str(c) for c in row.get("categories") or []]


def flag_patch(flags: Iterable[str], value: bool) -> dict[str, Any]:
    """The PATCH body that adds (``value``) or removes ``\\Seen`` and ``\\Flagged``
    (``\\Answered`` depends on the message's current verb: :func:`answered_patch`)."""
    out: dict[str, Any] = {}
    for flag in flags:
        lowered = flag.lower()
        if lowered == "\\seen":
            out["isRead"] = value
        elif lowered == "\\flagged":
            out["flag"] = {"flagStatus": "flagged" if value else "notFlagged"}
    return out


def answered_patch(want: bool, current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The PATCH body that makes a message ``\\Answered`` (``want``) or not.

    ``current`` is the message expanded with :data:`EXPAND_LAST_VERB`, or None when unknown.
    Nothing is written when the message already is as wanted; a removal from an unknown message
    writes nothing either (it might be a forward, verb 104, which is not ``\\Answered`` and must
    not be overwritten)."""
    if current is None:
        return verb_patch(VERB_REPLY) if want else {}
    if is_answered(current) == want:
        return {}
    return verb_patch(VERB_REPLY if want else VERB_NONE)


def state_of(row: Mapping[str, Any]) -> str:
    """The compact indexed state of a message: flags and categories."""
    return " ".join(flags_of(row)) + "\x1f" + "\x1e".join(categories_of(row))


def decode_state(state: str) -> tuple[list[str], list[str]]:
    flags, _, cats = state.partition("\x1f")
    return [f for f in flags.split(" ") if f], [c for c in cats.split("\x1e") if c]


# -- addresses, dates ----------------------------------------------------------------------------


def address(value: Any) -> dict[str, str] | None:
    ea = (value or {}).get("emailAddress") if isinstance(value, Mapping) else None
    if not isinstance(ea, Mapping) or not (ea.get("address") or ea.get("name")):
        return None
    out = {"address": str(ea.get("address") or "")}
    name = ea.get("name")
    if name and name != ea.get("address"):
        out["name"] = str(name)
    return out


def addresses(values: Any) -> list[dict[str, str]]:
    return [a for a in (address(v) for v in values or []) if a is not None]


def iso(value: Any) -> str | None:
    """Graph's DateTimeOffset as the contract's ISO form (UTC, milliseconds, ``Z``)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the summary ---------------------------------------------------------------------------------


def attachment_entry(message: str, att: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": attachment_id(message, str(att.get("id") or "")),
        "contentType": str(att.get("contentType") or "application/octet-stream"),
        "encodedSize": int(att.get("size") or 0),
        "embedded": bool(att.get("isInline")),
        "inline": bool(att.get("isInline")),
    }
    if att.get("name"):
        entry["filename"] = str(att["name"])
    cid = att.get("contentId")
    if cid:
        entry["contentId"] = cid if str(cid).startswith("<") else f"<{cid}>"
    return entry


def summarize(
    row: Mapping[str, Any], *, path: str | None, special_use: str | None
) -> dict[str, Any]:
    """One listing entry from a message resource selected with :data:`SUMMARY_FIELDS`."""
    mid = str(row.get("id") or "")
    flags = flags_of(row)
    out: dict[str, Any] = {"id": mid}
    if path is not None:
        out["path"] = path
    out["emailId"] = mid
    if row.get("conversationId"):
        out["threadId"] = str(row["conversationId"])
    out["date"] = iso(row.get("receivedDateTime")) or iso(row.get("sentDateTime"))
    out["flags"] = flags
    if DRAFT in flags:
        out["draft"] = True
    out["unseen"] = SEEN not in flags
    if FLAGGED in flags:
        out["flagged"] = True
    if ANSWERED in flags:
        out["answered"] = True
    labels = categories_of(row)
    if labels:
        out["labels"] = labels
    if row.get("subject") is not None:
        out["subject"] = str(row.get("subject") or "")
    sender = address(row.get("sender"))
    author = address(row.get("from"))
    if author:
        out["from"] = author
    if sender:
        out["sender"] = sender
    for key, field_name in (
        ("replyTo", "replyTo"),
        ("to", "toRecipients"),
        ("cc", "ccRecipients"),
        ("bcc", "bccRecipients"),
    ):
        values = addresses(row.get(field_name))
        if values:
            out[key] = values
    if row.get("internetMessageId"):
        out["messageId"] = str(row["internetMessageId"])
    if special_use:
        out["messageSpecialUse"] = special_use
    atts = row.get("attachments")
    if isinstance(atts, list):
        out["attachments"] = [attachment_entry(mid, a) for a in atts if isinstance(a, Mapping)]
    else:
        out["attachments"] = []
    out["text"] = {"id": text_id(mid)}
    return out
