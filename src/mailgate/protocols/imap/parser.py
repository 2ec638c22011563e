"""Stage 3: :class:`ResponseParser` turns server bytes into typed :mod:`.responses` records.

Usage (sans-IO: the caller owns the socket)::

    parser = ResponseParser()
    for response in parser.feed(chunk):   # any chunk size, down to one byte
        ...

``feed`` buffers partial lines and literals and returns only complete responses. Garbage or a
broken limit raises :class:`mailgate.errors.ProtocolError` – never another exception type – and
the parser stays broken afterwards (the connection must be dropped).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mailgate.errors import ProtocolError

from .bodystructure import parse_bodystructure
from .envelope import parse_envelope
from .lexer import Frame, Framer, tokenize
from .limits import DEFAULT_LIMITS, ImapLimits
from .responses import (
    AppendUid,
    CapabilityResponse,
    CodeValue,
    Continuation,
    CopyUid,
    EnabledResponse,
    EsearchResponse,
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    FlagsResponse,
    GenericResponse,
    IdResponse,
    ListResponse,
    MailboxStatusResponse,
    NamespaceEntry,
    NamespaceResponse,
    RecentResponse,
    Response,
    ResponseCode,
    SearchResponse,
    TaggedResponse,
    UntaggedStatus,
    VanishedResponse,
)
from .sequence import expand
from .values import (
    astring_bytes,
    flag_list,
    internaldate,
    is_nil,
    mailbox_name,
    nstring,
    opt_int,
    text,
    to_int,
)

__all__ = ["ResponseParser"]

_STATUS_WORDS = frozenset({b"OK", b"NO", b"BAD", b"PREAUTH", b"BYE"})
_INT_CODES = frozenset({"UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ"})


class ResponseParser:
    """Incremental parser of one connection's server stream."""

    def __init__(self, limits: ImapLimits = DEFAULT_LIMITS, *, utf8_mailboxes: bool = False):
        self.limits = limits
        #: Decode mailbox names as UTF-8 rather than modified UTF-7 (after ENABLE UTF8=ACCEPT).
        self.utf8_mailboxes = utf8_mailboxes
        self._framer = Framer(limits)
        self._broken: ProtocolError | None = None

    @property
    def idle(self) -> bool:
        """No partial response buffered."""
        return self._framer.idle

    def feed(self, data: bytes) -> list[Response]:
        if self._broken is not None:
            raise ProtocolError(f"parser already failed: {self._broken}")
        try:
            return [self.parse_frame(frame) for frame in self._framer.feed(data)]
        except ProtocolError as exc:
            self._broken = exc
            raise
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, RecursionError) as exc:
            err = ProtocolError(f"malformed IMAP response: {exc}")
            self._broken = err
            raise err from exc

    # -- dispatch ----------------------------------------------------------------------------

    def parse_frame(self, frame: Frame) -> Response:
        first = frame.texts[0]
        if len(frame.texts) == 1 and first.startswith(b"* "):
            m = _FASTEST_FETCH.match(first)
            if m is not None:
                seq, uid, flags, modseq = m.groups()
                return FetchResponse(
                    int(seq),
                    {
                        "UID": int(uid),
                        "FLAGS": tuple(flags.decode("utf-8", "surrogateescape").split()),
                        "MODSEQ": int(modseq),
                    },
                )
            m = _FAST_FETCH.match(first)
            if m is not None:
                return _fast_fetch(m)
        if first.startswith(b"+"):
            raw = first[2:] if first.startswith(b"+ ") else first[1:]
            return Continuation(raw.decode("utf-8", "replace"), raw)
        tag, sp, rest = first.partition(b" ")
        if not tag or not sp:
            raise ProtocolError(f"malformed IMAP response line {first[:60]!r}")
        word, _, tail = rest.partition(b" ")
        uword = word.upper()
        if tag == b"*":
            if uword in _STATUS_WORDS:
                code, txt = self._status_tail(tail, frame)
                return UntaggedStatus(uword.decode(), code, txt)
            return self._untagged(frame)
        if uword not in _STATUS_WORDS or uword in (b"PREAUTH", b"BYE"):
            raise ProtocolError(f"malformed tagged response {first[:60]!r}")
        code, txt = self._status_tail(tail, frame)
        return TaggedResponse(tag.decode("ascii", "replace"), uword.decode(), code, txt)

    def _status_tail(self, tail: bytes, frame: Frame) -> tuple[ResponseCode | None, str]:
        if len(frame.texts) > 1:  # a literal inside a status response: keep it as text
            parts = [tail]
            for lit, txt in zip(frame.literals, frame.texts[1:], strict=False):
                parts += [lit, txt]
            tail = b"".join(parts)
        tail = tail.lstrip(b" ")
        code: ResponseCode | None = None
        if tail.startswith(b"["):
            end = _code_end(tail)
            if end > 0:
                code = self._code(tail[1:end])
                tail = tail[end + 1 :].lstrip(b" ")
        return code, tail.decode("utf-8", "replace")

    def _code(self, content: bytes) -> ResponseCode:
        name_b, _, args = content.partition(b" ")
        name = name_b.decode("ascii", "replace").upper()
        raw = args.decode("utf-8", "replace")
        value: CodeValue = None
        try:
            value = self._code_value(name, args)
        except (ProtocolError, ValueError, IndexError):
            value = None
        return ResponseCode(name, raw, value)

    def _code_value(self, name: str, args: bytes) -> CodeValue:
        limit = self.limits.max_sequence_set_expansion
        if name in _INT_CODES:
            return to_int(args.strip(), name)
        if name == "CAPABILITY":
            return frozenset(a.decode("ascii", "replace").upper() for a in args.split())
        if name in ("PERMANENTFLAGS", "BADCHARSET"):
            toks = tokenize(Frame([args], []), self.limits)
            if toks and isinstance(toks[0], list):
                return flag_list(toks[0])
            return flag_list(toks)
        if name == "APPENDUID":
            p = args.split()
            return AppendUid(to_int(p[0]), tuple(expand(p[1], limit=limit)))
        if name == "COPYUID":
            p = args.split()
            return CopyUid(
                to_int(p[0]), tuple(expand(p[1], limit=limit)), tuple(expand(p[2], limit=limit))
            )
        if name == "MODIFIED":
            return tuple(expand(args.strip(), limit=limit))
        if name == "MAILBOXID":
            return args.strip(b" ()").decode("ascii", "replace")
        return None

    def _untagged(self, frame: Frame) -> Response:
        toks = tokenize(frame, self.limits, 2)
        if not toks or not isinstance(toks[0], str):
            raise ProtocolError("malformed untagged response")
        head = toks[0]
        if head.isascii() and head.isdigit():
            if len(toks) < 2 or not isinstance(toks[1], str):
                raise ProtocolError("malformed numbered untagged response")
            num = to_int(head)
            kw = toks[1].upper()
            if kw == "FETCH":
                return self._fetch(num, toks[2] if len(toks) > 2 else None)
            if kw == "EXISTS":
                return ExistsResponse(num)
            if kw == "EXPUNGE":
                return ExpungeResponse(num)
            if kw == "RECENT":
                return RecentResponse(num)
            return GenericResponse(kw, num, tuple(toks[2:]))
        kw = head.upper()
        handler = _HANDLERS.get(kw)
        if handler is None:
            return GenericResponse(kw, None, tuple(toks[1:]))
        return handler(self, toks)

    # -- untagged data -------------------------------------------------------------------------

    def _capability(self, toks: list[Any]) -> Response:
        return CapabilityResponse(_upper_atoms(toks[1:]))

    def _enabled(self, toks: list[Any]) -> Response:
        return EnabledResponse(_upper_atoms(toks[1:]))

    def _id(self, toks: list[Any]) -> Response:
        data = toks[1] if len(toks) > 1 else None
        if not isinstance(data, list):
            return IdResponse(None)
        fields: dict[str, str] = {}
        for i in range(0, len(data) - 1, 2):
            key = text(data[i])
            if key is not None:
                fields[key] = text(data[i + 1]) or ""
        return IdResponse(fields)

    def _namespace(self, toks: list[Any]) -> Response:
        groups: list[tuple[NamespaceEntry, ...]] = []
        for tok in [*toks[1:], None, None, None][:3]:
            entries: list[NamespaceEntry] = []
            if isinstance(tok, list):
                for item in tok:
                    if isinstance(item, list) and item:
                        prefix = mailbox_name(astring_bytes(item[0]), utf8=self.utf8_mailboxes)
                        delim = _delimiter(item[1] if len(item) > 1 else None)
                        entries.append(NamespaceEntry(prefix, delim))
            groups.append(tuple(entries))
        return NamespaceResponse(groups[0], groups[1], groups[2])

    def _list(self, toks: list[Any]) -> Response:
        if len(toks) < 4:
            raise ProtocolError("short LIST response")
        kind = toks[0].upper()
        raw_name = astring_bytes(toks[3])
        extended: dict[str, Any] = {}
        if len(toks) > 4 and isinstance(toks[4], list):
            ext = toks[4]
            for i in range(0, len(ext) - 1, 2):
                key = text(ext[i]) if not isinstance(ext[i], list) else None
                if key is None:
                    continue
                key = key.upper()
                val = ext[i + 1]
                if key == "CHILDINFO" and isinstance(val, list):
                    extended[key] = tuple((text(v) or "").upper() for v in val)
                elif key == "OLDNAME" and isinstance(val, list) and val:
                    old = astring_bytes(val[0])
                    extended[key] = mailbox_name(old, utf8=self.utf8_mailboxes)
                else:
                    extended[key] = val
        return ListResponse(
            kind="LIST" if kind == "XLIST" else kind,
            flags=flag_list(toks[1]),
            delimiter=_delimiter(toks[2]),
            name=mailbox_name(raw_name, utf8=self.utf8_mailboxes),
            raw_name=raw_name,
            extended=extended,
        )

    def _status(self, toks: list[Any]) -> Response:
        if len(toks) < 3 or not isinstance(toks[-1], list):
            raise ProtocolError("malformed STATUS response")
        raw_name = astring_bytes(toks[1])
        data = toks[-1]
        items: dict[str, int] = {}
        for i in range(0, len(data) - 1, 2):
            key = text(data[i])
            value = opt_int(data[i + 1])
            if key is not None and value is not None:
                items[key.upper()] = value
        return MailboxStatusResponse(
            mailbox_name(raw_name, utf8=self.utf8_mailboxes), items, raw_name
        )

    def _search(self, toks: list[Any]) -> Response:
        ids: list[int] = []
        modseq: int | None = None
        for tok in toks[1:]:
            if isinstance(tok, list):
                if len(tok) >= 2 and str(tok[0]).upper() == "MODSEQ":
                    modseq = to_int(tok[1], "MODSEQ")
                continue
            ids.append(to_int(tok, "message number"))
        return SearchResponse(tuple(ids), modseq)

    def _esearch(self, toks: list[Any]) -> Response:
        tag: str | None = None
        uid = False
        i = 1
        if i < len(toks) and isinstance(toks[i], list):
            corr = toks[i]
            if len(corr) >= 2 and str(corr[0]).upper() == "TAG":
                tag = text(corr[1])
            i += 1
        if i < len(toks) and isinstance(toks[i], str) and toks[i].upper() == "UID":
            uid = True
            i += 1
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        limit = self.limits.max_sequence_set_expansion
        while i + 1 < len(toks):
            key = str(toks[i]).upper()
            val = toks[i + 1]
            i += 2
            if key in ("MIN", "MAX", "COUNT", "MODSEQ"):
                values[key] = to_int(val, key)
            elif key == "ALL":
                if not isinstance(val, str | bytes):
                    raise ProtocolError("malformed ESEARCH ALL")
                try:
                    values[key] = tuple(expand(val, limit=limit))
                except ValueError as exc:
                    raise ProtocolError(f"bad ESEARCH ALL: {exc}") from exc
            else:
                extra[key] = val
        return EsearchResponse(
            tag=tag,
            uid=uid,
            min=values.get("MIN"),
            max=values.get("MAX"),
            count=values.get("COUNT"),
            all=values.get("ALL"),
            modseq=values.get("MODSEQ"),
            extra=extra,
        )

    def _flags(self, toks: list[Any]) -> Response:
        return FlagsResponse(flag_list(toks[1]) if len(toks) > 1 else ())

    def _vanished(self, toks: list[Any]) -> Response:
        earlier = False
        i = 1
        if i < len(toks) and isinstance(toks[i], list):
            earlier = any(str(t).upper() == "EARLIER" for t in toks[i])
            i += 1
        if i >= len(toks) or not isinstance(toks[i], str | bytes):
            raise ProtocolError("malformed VANISHED response")
        try:
            uids = tuple(expand(toks[i], limit=self.limits.max_sequence_set_expansion))
        except ValueError as exc:
            raise ProtocolError(f"bad VANISHED set: {exc}") from exc
        return VanishedResponse(uids, earlier)

    # -- FETCH --------------------------------------------------------------------------------

    def _fetch(self, seq: int, data: Any) -> FetchResponse:
        if not isinstance(data, list):
            raise ProtocolError("FETCH response without an attribute list")
        attrs: dict[str, Any] = {}
        for i in range(0, len(data) - 1, 2):
            key = data[i]
            if not isinstance(key, str):
                raise ProtocolError("FETCH attribute name is not an atom")
            key = key.upper()
            value = data[i + 1]
            conv = _FETCH_CONVERTERS.get(key)
            if conv is not None:
                attrs[key] = conv(value)
            elif key.startswith(("BODY[", "BINARY[")):
                attrs[key] = nstring(value)
            elif key.startswith("BINARY.SIZE["):
                attrs[key] = opt_int(value)
            elif key == "X-GM-LABELS":
                attrs[key] = _labels(value)
            else:
                attrs[key] = value
        return FetchResponse(seq, attrs)


# Fast path for the bulk of an index sync: FETCH lines of only numbers, flags and MODSEQ, e.g.
# ``* 12 FETCH (UID 40 FLAGS (\Seen) MODSEQ (77))``. Anything else takes the general path.
_FAST_FETCH = re.compile(
    rb"\* ([0-9]{1,10}) FETCH \(((?:(?:UID|RFC822\.SIZE|MODSEQ \(|X-GM-MSGID|X-GM-THRID) ?"
    rb"[0-9]{1,20}\)?|FLAGS \([^()\"{}\[\]\x00-\x1f]*\))"
    rb"(?: (?:(?:UID|RFC822\.SIZE|MODSEQ \(|X-GM-MSGID|X-GM-THRID) ?[0-9]{1,20}\)?"
    rb"|FLAGS \([^()\"{}\[\]\x00-\x1f]*\)))*)\)\Z"
)
# The exact answer to ``UID FETCH ... (UID FLAGS MODSEQ)`` (what an index resync asks for).
_FASTEST_FETCH = re.compile(
    rb"\* ([0-9]{1,10}) FETCH \(UID ([0-9]{1,10}) FLAGS \(([^()\"{}\[\]\x00-\x1f]*)\) "
    rb"MODSEQ \(([0-9]{1,20})\)\)\Z"
)
_FAST_ITEM = re.compile(
    rb"(UID|RFC822\.SIZE|X-GM-MSGID|X-GM-THRID) ([0-9]+)|MODSEQ \(([0-9]+)\)|FLAGS \(([^()]*)\)"
)


def _fast_fetch(m: re.Match[bytes]) -> FetchResponse:
    attrs: dict[str, Any] = {}
    for item in _FAST_ITEM.finditer(m.group(2)):
        name, number, modseq, flags = item.groups()
        if name is not None:
            attrs[name.decode()] = int(number)
        elif modseq is not None:
            attrs["MODSEQ"] = int(modseq)
        else:
            attrs["FLAGS"] = tuple(flags.decode("utf-8", "surrogateescape").split())
    return FetchResponse(int(m.group(1)), attrs)


def _code_end(tail: bytes) -> int:
    depth = 0
    in_quote = False
    i = 1
    n = len(tail)
    while i < n:
        c = tail[i]
        if in_quote:
            if c == 0x5C:
                i += 1
            elif c == 0x22:
                in_quote = False
        elif c == 0x22:
            in_quote = True
        elif c == 0x28:
            depth += 1
        elif c == 0x29:
            depth = max(0, depth - 1)
        elif c == 0x5D and depth == 0:
            return i
        i += 1
    return -1


def _upper_atoms(toks: list[Any]) -> frozenset[str]:
    out: set[str] = set()
    for t in toks:
        if isinstance(t, str):
            out.add(t.upper())
        elif isinstance(t, bytes):
            out.add(t.decode("utf-8", "replace").upper())
    return frozenset(out)


def _delimiter(tok: Any) -> str | None:
    if tok is None or isinstance(tok, list) or is_nil(tok):
        return None
    raw = astring_bytes(tok)
    return raw.decode("utf-8", "replace") or None


def _modseq(tok: Any) -> int:
    if isinstance(tok, list) and tok:
        return to_int(tok[0], "MODSEQ")
    return to_int(tok, "MODSEQ")


def _objectid(tok: Any) -> str | None:
    if isinstance(tok, list):
        return text(tok[0]) if tok else None
    return text(tok)


def _labels(tok: Any) -> tuple[str, ...]:
    if not isinstance(tok, list):
        return ()
    out: list[str] = []
    for t in tok:
        if isinstance(t, str) and t.startswith("\\"):
            out.append(t)
        elif isinstance(t, str | bytes):
            out.append(mailbox_name(astring_bytes(t)))
    return tuple(out)


_FETCH_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "UID": lambda v: to_int(v, "UID"),
    "FLAGS": flag_list,
    "MODSEQ": _modseq,
    "RFC822.SIZE": lambda v: to_int(v, "RFC822.SIZE"),
    "INTERNALDATE": internaldate,
    "SAVEDATE": internaldate,
    "ENVELOPE": parse_envelope,
    "BODYSTRUCTURE": parse_bodystructure,
    "BODY": parse_bodystructure,
    "RFC822": nstring,
    "RFC822.HEADER": nstring,
    "RFC822.TEXT": nstring,
    "EMAILID": _objectid,
    "THREADID": _objectid,
    "X-GM-MSGID": lambda v: to_int(v, "X-GM-MSGID"),
    "X-GM-THRID": lambda v: to_int(v, "X-GM-THRID"),
    "PREVIEW": text,
}

_HANDLERS: dict[str, Callable[[ResponseParser, list[Any]], Response]] = {
    "CAPABILITY": ResponseParser._capability,
    "ENABLED": ResponseParser._enabled,
    "ID": ResponseParser._id,
    "NAMESPACE": ResponseParser._namespace,
    "LIST": ResponseParser._list,
    "LSUB": ResponseParser._list,
    "XLIST": ResponseParser._list,
    "STATUS": ResponseParser._status,
    "SEARCH": ResponseParser._search,
    "ESEARCH": ResponseParser._esearch,
    "FLAGS": ResponseParser._flags,
    "VANISHED": ResponseParser._vanished,
}
