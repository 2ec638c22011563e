"""EmailEngine search object (``POST /v1/account/{account}/search``) → IMAP SEARCH criteria.

Pure: no I/O. :func:`compile_search` validates the ``search`` object and returns a
:class:`SearchPlan` whose ``criteria`` go straight to the IMAP client's
``uid_search(criteria, charset=...)``. Each ``str`` in ``criteria`` is one rendered token (an atom
such as ``UNSEEN``, a number, a sequence set, a date, or a double-quoted string with ``\\`` and
``"`` escaped); each ``bytes`` is sent as a literal. Values that are non-ASCII, contain control
characters, or are longer than :data:`~.limits.MAX_QUOTED_LENGTH` become UTF-8 literals, and
``charset`` is ``"UTF-8"`` when any literal is non-ASCII.

Field → criteria (criteria are ANDed, in the fixed order of this table, whatever the order of the
JSON object; an empty object gives ``ALL``)::

    seq: "1:10"              1:10                   strict sequence set, numbers 1..2^32-1 or *
    answered/deleted/draft/  ANSWERED / UNANSWERED  true → the flag, false → its UN- form
    flagged/seen: bool       ...
    unseen: bool             UNSEEN / SEEN
    from/to/cc/bcc/body/     FROM "x" ...           non-empty strings, contract max lengths
    subject: str
    larger/smaller: int      LARGER n / SMALLER n   0..1 GiB
    uid: "100:200"           UID 100:200
    before/since/            BEFORE 1-Feb-2024 ...  ISO 8601 date or date-time (aware values are
    sentBefore/sentSince                            taken in UTC), or epoch milliseconds
    emailId                  EMAILID id             OBJECTID (RFC 8474); else X-GM-MSGID n with
                                                    X-GM-EXT-1; else rejected
    threadId                 THREADID id            likewise, X-GM-THRID
    header: {name: v}        HEADER "name" "v"      v true or "" → presence (HEADER "name" ""),
                                                    false → absence (NOT HEADER "name" "")
    modseq: int              MODSEQ n               CONDSTORE or QRESYNC only
    gmailRaw: str            X-GM-RAW "q"           X-GM-EXT-1 only
    labels: {has, not}       X-GM-LABELS "l" /      X-GM-EXT-1 only (Gmail over IMAP); names in
                             NOT X-GM-LABELS "l"    modified UTF-7 like mailbox names
    emailIds: [id, ...]      OR EMAILID a EMAILID b every other field is ignored (contract); a
                                                    balanced OR tree; [] matches nothing (NOT ALL)

A ``null`` value is treated as an absent field. Every invalid input raises
:class:`mailgate.errors.BadRequest` whose message names the field (``search.<field>``): unknown
fields, wrong types, out-of-range numbers, bad dates, bad sequence sets, bad header names
(RFC 5322 field-name: printable ASCII except ``:``), NUL characters (IMAP cannot send them), and
fields the server's capabilities cannot express. Nothing else is ever raised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from mailgate.errors import BadRequest

from .limits import MAX_QUOTED_LENGTH
from .utf7 import encode_utf7

__all__ = [
    "MAX_EMAIL_IDS",
    "MAX_HEADERS",
    "MAX_HEADER_NAME_LENGTH",
    "MAX_HEADER_VALUE_LENGTH",
    "MAX_LABELS",
    "MAX_MODSEQ",
    "MAX_SEQUENCE_SET_LENGTH",
    "MAX_SIZE",
    "SEARCH_FIELDS",
    "SearchPlan",
    "compile_search",
]

#: Longest ``seq`` / ``uid`` sequence set (contract ``maxLength``).
MAX_SEQUENCE_SET_LENGTH = 8192
#: Largest ``larger`` / ``smaller`` value in bytes (contract ``maximum``).
MAX_SIZE = 1024 * 1024 * 1024
#: Largest ``modseq`` (RFC 7162 mod-sequence-value is a 63-bit number).
MAX_MODSEQ = 2**63 - 1
#: Most entries in ``header``.
MAX_HEADERS = 32
#: Longest header field name.
MAX_HEADER_NAME_LENGTH = 256
#: Longest header value to search for.
MAX_HEADER_VALUE_LENGTH = 2560
#: Most labels in ``labels.has`` plus ``labels.not``.
MAX_LABELS = 64
#: Most ids in ``emailIds``.
MAX_EMAIL_IDS = 1000

#: Longest value of each string field (contract ``maxLength``; ``threadId`` has none there).
_TEXT_LIMITS = {
    "from": 256,
    "to": 256,
    "cc": 256,
    "bcc": 256,
    "body": 256,
    "subject": 2560,
    "emailId": 256,
    "threadId": 256,
    "gmailRaw": 1024,
    "label": 128,
    "emailIds": 256,
}

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SEQ_NUM = r"(?:[1-9][0-9]{0,9}|\*)"
_SEQ_SET_RE = re.compile(rf"{_SEQ_NUM}(?::{_SEQ_NUM})?(?:,{_SEQ_NUM}(?::{_SEQ_NUM})?)*")
_OBJECTID_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
_DECIMAL_RE = re.compile(r"[0-9]{1,20}")
_FIELD_NAME_RE = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_QUOTABLE_RE = re.compile(r"[\x20-\x7e]*")

_FLAGS = (  # field, token when true, token when false
    ("answered", "ANSWERED", "UNANSWERED"),
    ("deleted", "DELETED", "UNDELETED"),
    ("draft", "DRAFT", "UNDRAFT"),
    ("unseen", "UNSEEN", "SEEN"),
    ("flagged", "FLAGGED", "UNFLAGGED"),
    ("seen", "SEEN", "UNSEEN"),
)
_TEXTS = (("from", "FROM"), ("to", "TO"), ("cc", "CC"), ("bcc", "BCC"))
_TEXTS2 = (("body", "BODY"), ("subject", "SUBJECT"))
_SIZES = (("larger", "LARGER"), ("smaller", "SMALLER"))
_DATES = (
    ("before", "BEFORE"),
    ("since", "SINCE"),
    ("sentBefore", "SENTBEFORE"),
    ("sentSince", "SENTSINCE"),
)

#: Every field of the contract's ``SearchQuery`` this compiler accepts.
SEARCH_FIELDS = frozenset(
    {"seq", "uid", "modseq", "header", "emailId", "threadId", "gmailRaw", "labels", "emailIds"}
    | {f for f, _, _ in _FLAGS}
    | {f for f, _ in (*_TEXTS, *_TEXTS2, *_SIZES, *_DATES)}
)


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """Arguments for ``uid_search``: rendered tokens (``str``) and literals (``bytes``)."""

    criteria: list[str | bytes] = field(default_factory=list)
    charset: str | None = None


def _bad(name: str, problem: str) -> BadRequest:
    return BadRequest(f"search.{name} {problem}", "InputValidationError", key=name)


class _Compiler:
    def __init__(self, capabilities: frozenset[str]) -> None:
        self.caps = frozenset(c.upper() for c in capabilities)
        self.out: list[str | bytes] = []
        self.utf8 = False

    # -- value renderers -------------------------------------------------------------------

    def string(self, value: str, name: str) -> str | bytes:
        """A quoted string, or a literal when quoting cannot carry the value."""
        if "\x00" in value:
            raise _bad(name, "must not contain NUL characters")
        if len(value) <= MAX_QUOTED_LENGTH and _QUOTABLE_RE.fullmatch(value):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from JSON "\ud800"
            raise _bad(name, "must be valid Unicode text") from None
        if not value.isascii():
            self.utf8 = True
        return data

    def text(self, query: Mapping[str, Any], name: str, *, limit: int) -> str | None:
        value = query.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _bad(name, "must be a string")
        if not value:
            raise _bad(name, "must not be empty")
        if len(value) > limit:
            raise _bad(name, f"must be at most {limit} characters long")
        return value

    def integer(self, value: object, name: str, *, maximum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(name, "must be an integer")
        if not 0 <= value <= maximum:
            raise _bad(name, f"must be between 0 and {maximum}")
        return value

    def sequence_set(self, value: object, name: str) -> str:
        if not isinstance(value, str):
            raise _bad(name, "must be a string")
        if len(value) > MAX_SEQUENCE_SET_LENGTH:
            raise _bad(name, f"must be at most {MAX_SEQUENCE_SET_LENGTH} characters long")
        if not _SEQ_SET_RE.fullmatch(value) or any(
            n != "*" and int(n) > _U32_MAX for n in re.split("[:,]", value)
        ):
            raise _bad(name, 'must be an IMAP sequence set such as "1:10", "1,3,5" or "100:*"')
        return value

    def date(self, value: object, name: str) -> str:
        when: date
        if isinstance(value, bool):
            raise _bad(name, "must be an ISO 8601 date or epoch milliseconds")
        if isinstance(value, int | float):
            try:
                if not math.isfinite(value):
                    raise ValueError
                when = datetime.fromtimestamp(value / 1000, tz=UTC).date()
            except (ValueError, OverflowError, OSError):
                raise _bad(name, "is not a valid timestamp") from None
        elif isinstance(value, str):
            try:
                if len(value) > 64:
                    raise ValueError
                parsed = datetime.fromisoformat(value.strip())
                if parsed.tzinfo is not None:
                    parsed = parsed.astimezone(UTC)
                when = parsed.date()
            except (ValueError, OverflowError):
                raise _bad(name, "must be an ISO 8601 date or date-time") from None
        else:
            raise _bad(name, "must be an ISO 8601 date or epoch milliseconds")
        return f"{when.day}-{_MONTHS[when.month - 1]}-{when.year:04d}"

    # -- capability-dependent keys ---------------------------------------------------------

    def object_id(self, value: object, name: str, rfc8474_key: str, gmail_key: str) -> list[str]:
        if not isinstance(value, str):
            raise _bad(name, "must be a string")
        if len(value) > _TEXT_LIMITS[name]:
            raise _bad(name, f"must be at most {_TEXT_LIMITS[name]} characters long")
        if "OBJECTID" in self.caps:
            if not _OBJECTID_RE.fullmatch(value):
                raise _bad(name, "must be an object id (letters, digits, '_' and '-')")
            return [rfc8474_key, value]
        if "X-GM-EXT-1" in self.caps:
            if not _DECIMAL_RE.fullmatch(value) or int(value) > _U64_MAX:
                raise _bad(name, "must be a Gmail id (a decimal number)")
            return [gmail_key, str(int(value))]
        raise _bad(name, "is not supported by this server (it has neither OBJECTID nor X-GM-EXT-1)")

    def require(self, name: str, *caps: str) -> None:
        if not any(c in self.caps for c in caps):
            raise _bad(name, f"is not supported by this server (it lacks {' or '.join(caps)})")

    # -- the search object -----------------------------------------------------------------

    def compile(self, query: object) -> SearchPlan:
        if not isinstance(query, Mapping):
            raise BadRequest("search must be an object", "InputValidationError", key="search")
        for key in query:
            if not isinstance(key, str) or key not in SEARCH_FIELDS:
                raise _bad(str(key)[:64], "is not allowed")
        if query.get("emailIds") is not None:
            self.email_ids(query["emailIds"])
        else:
            self.criteria(query)
        criteria = self.out or ["ALL"]
        return SearchPlan(criteria=list(criteria), charset="UTF-8" if self.utf8 else None)

    def criteria(self, query: Mapping[str, Any]) -> None:
        out = self.out
        if query.get("seq") is not None:
            out.append(self.sequence_set(query["seq"], "seq"))
        for name, yes, no in _FLAGS:
            value = query.get(name)
            if value is None:
                continue
            if not isinstance(value, bool):
                raise _bad(name, "must be a boolean")
            out.append(yes if value else no)
        for name, key in (*_TEXTS, *_TEXTS2):
            value = self.text(query, name, limit=_TEXT_LIMITS[name])
            if value is not None:
                out += [key, self.string(value, name)]
        for name, key in _SIZES:
            if query.get(name) is not None:
                out += [key, str(self.integer(query[name], name, maximum=MAX_SIZE))]
        if query.get("uid") is not None:
            out += ["UID", self.sequence_set(query["uid"], "uid")]
        for name, key in _DATES:
            if query.get(name) is not None:
                out += [key, self.date(query[name], name)]
        if query.get("emailId") is not None:
            out += self.object_id(query["emailId"], "emailId", "EMAILID", "X-GM-MSGID")
        if query.get("threadId") is not None:
            out += self.object_id(query["threadId"], "threadId", "THREADID", "X-GM-THRID")
        if query.get("header") is not None:
            self.headers(query["header"])
        if query.get("modseq") is not None:
            value = self.integer(query["modseq"], "modseq", maximum=MAX_MODSEQ)
            self.require("modseq", "CONDSTORE", "QRESYNC")
            out += ["MODSEQ", str(value)]
        raw = self.text(query, "gmailRaw", limit=_TEXT_LIMITS["gmailRaw"])
        if raw is not None:
            self.require("gmailRaw", "X-GM-EXT-1")
            out += ["X-GM-RAW", self.string(raw, "gmailRaw")]
        if query.get("labels") is not None:
            self.labels(query["labels"])

    def headers(self, headers: object) -> None:
        if not isinstance(headers, Mapping):
            raise _bad("header", "must be an object of header names and values")
        if len(headers) > MAX_HEADERS:
            raise _bad("header", f"must have at most {MAX_HEADERS} entries")
        for name, value in headers.items():
            if not isinstance(name, str) or not _FIELD_NAME_RE.fullmatch(name):
                raise _bad("header", "names must be RFC 5322 field names (printable ASCII, no ':')")
            if len(name) > MAX_HEADER_NAME_LENGTH:
                raise _bad("header", f"names must be at most {MAX_HEADER_NAME_LENGTH} characters")
            if value is None:
                continue
            quoted_name = self.string(name, "header")
            if value is True or value is False:
                tokens: list[str | bytes] = ["HEADER", quoted_name, '""']
                self.out += tokens if value else ["NOT", *tokens]
            elif isinstance(value, str):
                if len(value) > MAX_HEADER_VALUE_LENGTH:
                    raise _bad(
                        "header", f"values must be at most {MAX_HEADER_VALUE_LENGTH} characters"
                    )
                self.out += ["HEADER", quoted_name, self.string(value, "header")]
            else:
                raise _bad("header", f"value of {name} must be a string or a boolean")

    def labels(self, labels: object) -> None:
        if not isinstance(labels, Mapping):
            raise _bad("labels", "must be an object with 'has' and/or 'not' lists")
        for key in labels:
            if key not in ("has", "not"):
                raise _bad("labels", f"has an unknown key {str(key)[:64]!r}")
        groups: list[tuple[bool, list[str]]] = []
        total = 0
        for key in ("has", "not"):
            items = labels.get(key)
            if items is None:
                continue
            if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
                raise _bad("labels", f"{key} must be a list of non-empty strings")
            total += len(items)
            if total > MAX_LABELS:
                raise _bad("labels", f"must name at most {MAX_LABELS} labels")
            if any(len(i) > _TEXT_LIMITS["label"] for i in items):
                raise _bad("labels", f"names must be at most {_TEXT_LIMITS['label']} characters")
            groups.append((key == "not", items))
        if not total:
            return
        self.require("labels", "X-GM-EXT-1")
        for negate, items in groups:
            for label in items:
                if "\x00" in label:
                    raise _bad("labels", "must not contain NUL characters")
                try:
                    encoded = encode_utf7(label).decode("ascii")
                except (UnicodeError, ValueError):
                    raise _bad("labels", "names must be valid Unicode text") from None
                self.out += [
                    *(["NOT"] if negate else []),
                    "X-GM-LABELS",
                    self.string(encoded, "labels"),
                ]

    def email_ids(self, ids: object) -> None:
        if not isinstance(ids, list):
            raise _bad("emailIds", "must be a list of strings")
        if len(ids) > MAX_EMAIL_IDS:
            raise _bad("emailIds", f"must have at most {MAX_EMAIL_IDS} entries")
        keys: list[list[str]] = []
        seen: set[str] = set()
        for item in ids:
            key = self.object_id(item, "emailIds", "EMAILID", "X-GM-MSGID")
            if key[1] not in seen:
                seen.add(key[1])
                keys.append(key)
        if not keys:
            self.out += ["NOT", "ALL"]
            return
        self.out += _or_tree(keys, 0, len(keys))


def _or_tree(keys: list[list[str]], lo: int, hi: int) -> list[str]:
    """Balanced prefix ``OR`` over ``keys[lo:hi]`` (depth log2 n, no parentheses needed)."""
    if hi - lo == 1:
        return keys[lo]
    mid = (lo + hi) // 2
    return ["OR", *_or_tree(keys, lo, mid), *_or_tree(keys, mid, hi)]


def compile_search(
    query: Mapping[str, Any], *, capabilities: frozenset[str] = frozenset()
) -> SearchPlan:
    """Compile EmailEngine's ``search`` object for a server with ``capabilities``.

    Raises :class:`BadRequest` naming the field for any input IMAP cannot search for.
    """
    compiler = _Compiler(capabilities)
    return compiler.compile(query)
