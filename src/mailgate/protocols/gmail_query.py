"""EmailEngine search object → Gmail search (``q`` of ``messages.list``). Pure: no I/O.

:func:`compile_gmail_query` validates the search object and returns a :class:`GmailQuery`.
Criteria are ANDed in the fixed order of this table; an empty object matches everything::

    seen / unseen: bool      is:read / is:unread
    flagged: bool            is:starred / -is:starred
    draft: bool              in:drafts / -in:drafts
    from/to/cc/bcc: str      from:"x" ...            (quoted; " and \\ are dropped)
    subject: str             subject:"x"
    body: str                "x"                     (Gmail matches words anywhere)
    larger / smaller: int    larger:n / smaller:n    bytes
    since / before           after:s / before:s      epoch seconds (exact instants, not
                                                     Gmail's Pacific-time dates)
    header: {Message-ID: v}  rfc822msgid:v           the only header Gmail can search
    labels: {has, not}       label:x / -label:x      names with spaces and / as -
    gmailRaw: str            (raw)                   passed through unchanged
    emailId / emailIds       message ids             Gmail's ids: fetched directly
    threadId                 thread id               threads.get

Anything Gmail cannot express is a :class:`~mailgate.errors.BadRequest` naming the field:
``answered``, ``deleted`` (no such state in Gmail), ``seq``/``uid``/``modseq`` (IMAP
numbers), ``sentBefore``/``sentSince`` (Gmail searches the received date only), any other
header. A ``null`` value is an absent field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from mailgate.errors import BadRequest

__all__ = ["MAX_QUERY_LENGTH", "GmailQuery", "compile_gmail_query", "quote"]

#: Longest ``q`` built (Gmail rejects very long queries).
MAX_QUERY_LENGTH = 8192
#: Most ids in ``emailIds``.
MAX_EMAIL_IDS = 1000
#: Most labels in ``labels.has`` + ``labels.not``.
MAX_LABELS = 64
MAX_SIZE = 1024 * 1024 * 1024
_TEXT_LIMITS = {"from": 256, "to": 256, "cc": 256, "bcc": 256, "body": 256, "subject": 2560}
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSUPPORTED = {
    "answered": "Gmail has no answered state",
    "deleted": "Gmail has no deleted state",
    "seq": "sequence numbers exist only on IMAP accounts",
    "uid": "UIDs exist only on IMAP accounts",
    "modseq": "MODSEQ exists only on IMAP accounts",
    "sentBefore": "Gmail searches the received date only: use before",
    "sentSince": "Gmail searches the received date only: use since",
}
_KNOWN = frozenset(
    {"seen", "unseen", "flagged", "draft", "from", "to", "cc", "bcc", "subject", "body"}
    | {"larger", "smaller", "since", "before", "header", "labels", "gmailRaw"}
    | {"emailId", "emailIds", "threadId"}
    | set(_UNSUPPORTED)
)


@dataclass(frozen=True, slots=True)
class GmailQuery:
    """What to ask Gmail: ``q`` (may be empty), or exact message ids / one thread."""

    q: str = ""
    message_ids: tuple[str, ...] | None = None
    thread_id: str | None = None


def _bad(name: str, problem: str) -> BadRequest:
    return BadRequest(f"search.{name}: {problem}", "InputValidationError", key=f"search.{name}")


def quote(value: str) -> str:
    """A double-quoted Gmail term (Gmail has no escape: quotes and backslashes are dropped)."""
    cleaned = " ".join(value.replace('"', " ").replace("\\", " ").split())
    return f'"{cleaned}"'


def label_term(name: str) -> str:
    """A label name as ``label:`` takes it: spaces and slashes become dashes."""
    dashed = re.sub(r"[\s/]+", "-", name.strip())
    if re.search(r'[()"{}]', dashed):
        return quote(dashed)
    return dashed


def _text(query: Mapping[str, Any], name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, "must be a non-empty string")
    if len(value) > _TEXT_LIMITS.get(name, 1024):
        raise _bad(name, "is too long")
    if "\x00" in value:
        raise _bad(name, "must not contain NUL")
    return value


def _bool(query: Mapping[str, Any], name: str) -> bool | None:
    value = query.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _bad(name, "must be a boolean")
    return value


def _epoch(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise _bad(name, "must be a date")
    if isinstance(value, int | float):
        return int(value / 1000)
    if not isinstance(value, str) or not value:
        raise _bad(name, "must be a date")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(name, "must be an ISO 8601 date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise _bad(name, f"must be an integer from 0 to {MAX_SIZE}")
    return value


def _object_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise _bad(name, "is not a Gmail id")
    return value


def compile_gmail_query(search: object) -> GmailQuery:
    """Validate EmailEngine's search object and translate it for Gmail."""
    if not isinstance(search, Mapping):
        raise BadRequest("search must be an object", "InputValidationError", key="search")
    query = {k: v for k, v in search.items() if v is not None}
    for name in query:
        if name not in _KNOWN:
            raise _bad(str(name), "unknown search field")
        if name in _UNSUPPORTED:
            raise _bad(name, f"not supported for Gmail API accounts ({_UNSUPPORTED[name]})")
    if "emailIds" in query:
        ids = query["emailIds"]
        if not isinstance(ids, list) or len(ids) > MAX_EMAIL_IDS:
            raise _bad("emailIds", f"must be a list of at most {MAX_EMAIL_IDS} ids")
        return GmailQuery(message_ids=tuple(_object_id(i, "emailIds") for i in ids))
    terms: list[str] = []
    for name, yes, no in (
        ("seen", "is:read", "is:unread"),
        ("unseen", "is:unread", "is:read"),
        ("flagged", "is:starred", "-is:starred"),
        ("draft", "in:drafts", "-in:drafts"),
    ):
        flag = _bool(query, name)
        if flag is not None:
            terms.append(yes if flag else no)
    for name in ("from", "to", "cc", "bcc", "subject"):
        value = _text(query, name)
        if value is not None:
            terms.append(f"{name}:{quote(value)}")
    body = _text(query, "body")
    if body is not None:
        terms.append(quote(body))
    for name in ("larger", "smaller"):
        if name in query:
            terms.append(f"{name}:{_size(query[name], name)}")
    if "since" in query:
        terms.append(f"after:{_epoch(query['since'], 'since')}")
    if "before" in query:
        terms.append(f"before:{_epoch(query['before'], 'before')}")
    if "header" in query:
        terms.extend(_headers(query["header"]))
    if "labels" in query:
        terms.extend(_labels(query["labels"]))
    raw = query.get("gmailRaw")
    if raw is not None:
        if not isinstance(raw, str) or len(raw) > 1024:
            raise _bad("gmailRaw", "must be a string of at most 1024 characters")
        if raw.strip():
            terms.append(f"({raw.strip()})")
    q = " ".join(terms)
    if len(q) > MAX_QUERY_LENGTH:
        raise _bad("query", "is too long for Gmail")
    if "emailId" in query:
        return GmailQuery(q=q, message_ids=(_object_id(query["emailId"], "emailId"),))
    if "threadId" in query:
        return GmailQuery(q=q, thread_id=_object_id(query["threadId"], "threadId"))
    return GmailQuery(q=q)


def _headers(headers: object) -> list[str]:
    if not isinstance(headers, Mapping):
        raise _bad("header", "must be an object")
    out: list[str] = []
    for name, value in headers.items():
        if str(name).lower() != "message-id":
            raise _bad(f"header.{name}", "Gmail can search only the Message-ID header")
        if not isinstance(value, str) or not value.strip("<> "):
            raise _bad(f"header.{name}", "must be a Message-ID")
        out.append("rfc822msgid:" + quote(value.strip().strip("<>"))[1:-1].replace(" ", ""))
    return out


def _labels(labels: object) -> list[str]:
    if not isinstance(labels, Mapping):
        raise _bad("labels", "must be an object with has/not lists")
    out: list[str] = []
    count = 0
    for key, prefix in (("has", "label:"), ("not", "-label:")):
        values = labels.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            raise _bad(f"labels.{key}", "must be a list of label names")
        for value in values:
            if not isinstance(value, str) or not value.strip() or len(value) > 128:
                raise _bad(f"labels.{key}", "label names must be non-empty strings")
            count += 1
            out.append(prefix + label_term(_system_label(value)))
    if count > MAX_LABELS:
        raise _bad("labels", f"at most {MAX_LABELS} labels")
    return out


_SYSTEM = {
    "\\inbox": "inbox",
    "\\sent": "sent",
    "\\draft": "draft",
    "\\drafts": "draft",
    "\\trash": "trash",
    "\\spam": "spam",
    "\\junk": "spam",
    "\\starred": "starred",
    "\\flagged": "starred",
    "\\important": "important",
}


def _system_label(name: str) -> str:
    return _SYSTEM.get(name.lower(), name)
