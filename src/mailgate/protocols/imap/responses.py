"""Typed records for every IMAP server response mailgate understands.

The parser turns each complete server response into exactly one of the classes in
:data:`Response`. Records are frozen; mailbox names are already decoded to ``str``; numbers are
``int``; message data (``BODY[...]``) stays ``bytes``. Anything the parser does not know becomes a
:class:`GenericResponse` (never an error), so a new server extension cannot break a session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .bodystructure import BodyStructure
    from .envelope import Envelope

__all__ = [
    "AppendUid",
    "CapabilityResponse",
    "Continuation",
    "CopyUid",
    "EnabledResponse",
    "EsearchResponse",
    "ExistsResponse",
    "ExpungeResponse",
    "FetchResponse",
    "FlagsResponse",
    "GenericResponse",
    "IdResponse",
    "ListResponse",
    "MailboxStatusResponse",
    "NamespaceEntry",
    "NamespaceResponse",
    "RecentResponse",
    "Response",
    "ResponseCode",
    "SearchResponse",
    "TaggedResponse",
    "UntaggedStatus",
    "VanishedResponse",
]


@dataclass(frozen=True, slots=True)
class AppendUid:
    """``[APPENDUID uidvalidity uid-set]`` (RFC 4315)."""

    uidvalidity: int
    uids: tuple[int, ...]

    @property
    def uid(self) -> int:
        """The UID of the (first) appended message."""
        return self.uids[0]


@dataclass(frozen=True, slots=True)
class CopyUid:
    """``[COPYUID uidvalidity src-set dst-set]`` (RFC 4315); sets expanded, in matching order."""

    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]

    def mapping(self) -> dict[int, int]:
        """Source UID → destination UID."""
        return dict(zip(self.source_uids, self.dest_uids, strict=False))


#: Typed value of a response code; see :class:`ResponseCode`.
CodeValue = (
    int | frozenset[str] | tuple[str, ...] | tuple[int, ...] | AppendUid | CopyUid | str | None
)


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """A response code in brackets, e.g. ``[UIDNEXT 42]``.

    ``name`` is upper-case; ``raw`` is the unparsed text after the name; ``value`` is typed for the
    codes mailgate uses: ``int`` (UIDNEXT, UIDVALIDITY, UNSEEN, HIGHESTMODSEQ), ``frozenset`` of
    upper-case names (CAPABILITY), ``tuple[str, ...]`` (PERMANENTFLAGS, BADCHARSET),
    ``tuple[int, ...]`` (MODIFIED), :class:`AppendUid`, :class:`CopyUid`, ``str`` (MAILBOXID);
    ``None`` for codes without arguments and unknown codes.
    """

    name: str
    raw: str = ""
    value: CodeValue = None


@dataclass(frozen=True, slots=True)
class TaggedResponse:
    """``A1 OK [code] text`` – the completion of one command."""

    tag: str
    status: str  # OK | NO | BAD
    code: ResponseCode | None
    text: str

    @property
    def ok(self) -> bool:
        return self.status == "OK"


@dataclass(frozen=True, slots=True)
class UntaggedStatus:
    """``* OK|NO|BAD|PREAUTH|BYE [code] text``."""

    status: str
    code: ResponseCode | None
    text: str


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text`` – the server waits for more from the client (literal, SASL, IDLE)."""

    text: str
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class CapabilityResponse:
    capabilities: frozenset[str]


@dataclass(frozen=True, slots=True)
class EnabledResponse:
    capabilities: frozenset[str]


@dataclass(frozen=True, slots=True)
class IdResponse:
    """``* ID (...)`` (RFC 2971); ``None`` for ``* ID NIL``; NIL values become ``""``."""

    fields: dict[str, str] | None


class NamespaceEntry(NamedTuple):
    """One namespace: ``(prefix, delimiter)``; unpacks like a tuple."""

    prefix: str
    delimiter: str | None


@dataclass(frozen=True, slots=True)
class NamespaceResponse:
    personal: tuple[NamespaceEntry, ...]
    other: tuple[NamespaceEntry, ...]
    shared: tuple[NamespaceEntry, ...]


@dataclass(frozen=True, slots=True)
class ListResponse:
    """``* LIST (flags) "/" name [extended]`` (also LSUB and Gmail's XLIST).

    ``flags`` keep the server's case (``\\HasNoChildren``); ``extended`` holds LIST-EXTENDED data:
    ``CHILDINFO`` → tuple of upper-case str, ``OLDNAME`` → decoded name, others raw.
    """

    kind: str
    flags: tuple[str, ...]
    delimiter: str | None
    name: str
    raw_name: bytes
    extended: dict[str, Any] = field(default_factory=dict)

    def has_flag(self, flag: str) -> bool:
        low = flag.lower()
        return any(f.lower() == low for f in self.flags)


@dataclass(frozen=True, slots=True)
class MailboxStatusResponse:
    """``* STATUS name (MESSAGES 3 UIDNEXT 9)``; item names upper-case."""

    mailbox: str
    items: dict[str, int]
    raw_name: bytes = b""


@dataclass(frozen=True, slots=True)
class SearchResponse:
    """``* SEARCH 2 3 5 (MODSEQ 917)``."""

    ids: tuple[int, ...]
    modseq: int | None = None


@dataclass(frozen=True, slots=True)
class EsearchResponse:
    """``* ESEARCH (TAG "a1") UID MIN 2 MAX 9 COUNT 3 ALL 2,5:6`` (RFC 4731); ALL expanded."""

    tag: str | None
    uid: bool
    min: int | None = None
    max: int | None = None
    count: int | None = None
    all: tuple[int, ...] | None = None
    modseq: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> tuple[int, ...]:
        if self.all is not None:
            return self.all
        return tuple(sorted({v for v in (self.min, self.max) if v is not None}))


@dataclass(frozen=True, slots=True)
class FlagsResponse:
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExistsResponse:
    count: int


@dataclass(frozen=True, slots=True)
class RecentResponse:
    count: int


@dataclass(frozen=True, slots=True)
class ExpungeResponse:
    seq: int


@dataclass(frozen=True, slots=True)
class VanishedResponse:
    """``* VANISHED [(EARLIER)] uid-set`` (RFC 7162), expanded to ascending UIDs."""

    uids: tuple[int, ...]
    earlier: bool


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """``* 12 FETCH (...)``: ``attrs`` maps upper-case item names to typed values.

    ``UID``/``RFC822.SIZE``/``MODSEQ``/``X-GM-MSGID``/``X-GM-THRID`` → int; ``FLAGS`` → tuple[str];
    ``INTERNALDATE`` → aware datetime; ``ENVELOPE`` → Envelope; ``BODYSTRUCTURE``/``BODY`` →
    BodyStructure; ``BODY[section]<origin>``, ``BINARY[...]``, ``RFC822``, ``RFC822.HEADER``,
    ``RFC822.TEXT`` → bytes or None (NIL); ``EMAILID``/``THREADID`` → str or None;
    ``X-GM-LABELS`` → tuple[str].
    """

    seq: int
    attrs: dict[str, Any]

    @property
    def uid(self) -> int | None:
        v = self.attrs.get("UID")
        return v if isinstance(v, int) else None

    @property
    def flags(self) -> tuple[str, ...] | None:
        v = self.attrs.get("FLAGS")
        return v if isinstance(v, tuple) else None

    @property
    def modseq(self) -> int | None:
        v = self.attrs.get("MODSEQ")
        return v if isinstance(v, int) else None

    @property
    def size(self) -> int | None:
        v = self.attrs.get("RFC822.SIZE")
        return v if isinstance(v, int) else None

    @property
    def internaldate(self) -> datetime | None:
        v = self.attrs.get("INTERNALDATE")
        return v if isinstance(v, datetime) else None

    @property
    def envelope(self) -> Envelope | None:
        return self.attrs.get("ENVELOPE")

    @property
    def bodystructure(self) -> BodyStructure | None:
        v = self.attrs.get("BODYSTRUCTURE")
        if v is None:
            v = self.attrs.get("BODY")
        return v

    @property
    def email_id(self) -> str | None:
        v = self.attrs.get("EMAILID")
        if v is None and "X-GM-MSGID" in self.attrs:
            return str(self.attrs["X-GM-MSGID"])
        return v if isinstance(v, str) else None

    @property
    def thread_id(self) -> str | None:
        v = self.attrs.get("THREADID")
        if v is None and "X-GM-THRID" in self.attrs:
            return str(self.attrs["X-GM-THRID"])
        return v if isinstance(v, str) else None

    def section(self, name: str = "", kind: str = "BODY") -> bytes | None:
        """Data of ``BODY[name]`` (any origin), e.g. ``section("HEADER")``; None if absent/NIL."""
        key = f"{kind}[{name.upper()}]"
        v = self.attrs.get(key)
        if v is None:
            for k, val in self.attrs.items():
                if k.startswith(key):
                    v = val
                    break
        return v if isinstance(v, bytes) else None


@dataclass(frozen=True, slots=True)
class GenericResponse:
    """An untagged response the parser has no record for: ``* [number] KEYWORD data...``."""

    keyword: str
    number: int | None
    data: tuple[Any, ...]


Response = (
    TaggedResponse
    | UntaggedStatus
    | Continuation
    | CapabilityResponse
    | EnabledResponse
    | IdResponse
    | NamespaceResponse
    | ListResponse
    | MailboxStatusResponse
    | SearchResponse
    | EsearchResponse
    | FlagsResponse
    | ExistsResponse
    | RecentResponse
    | ExpungeResponse
    | VanishedResponse
    | FetchResponse
    | GenericResponse
)
