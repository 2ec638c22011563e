"""Command serializer: typed arguments → wire bytes, split at synchronizing literals.

A command is rendered into :class:`RenderedCommand` ``parts``. Part 0 is sent first; each later
part may only be sent after the server's ``+`` continuation (it starts with the data of a
synchronizing literal ``{n}``). With LITERAL+ (or LITERAL- for literals up to 4 KiB, RFC 7888)
literals are non-synchronizing (``{n+}``) and the command is a single part.

Arguments::

    str       → quoted string, or a literal when it cannot be quoted (CR/LF, too long, 8-bit
                without UTF8=ACCEPT)
    bytes     → always a literal (e.g. non-ASCII SEARCH criteria)
    int       → number
    Raw       → sent verbatim (atoms, flags, pre-rendered fetch items)
    Mailbox   → mailbox name: modified UTF-7 (or UTF-8 after UTF8=ACCEPT), then as a str
    Literal   → forced literal; ``binary=True`` renders literal8 ``~{n}``
    Secret    → like str, shown as ``***`` in the log line
    list/tuple → parenthesised list of the above
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .limits import LITERAL_MINUS_MAX, MAX_QUOTED_LENGTH
from .sequence import compress, is_sequence_set
from .utf7 import encode_utf7

__all__ = [
    "Arg",
    "CommandEncoder",
    "Literal",
    "Mailbox",
    "Raw",
    "RenderedCommand",
    "Secret",
    "TagGenerator",
    "format_internaldate",
    "sequence_arg",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Raw:
    value: str | bytes


@dataclass(frozen=True, slots=True)
class Literal:
    data: bytes
    binary: bool = False


@dataclass(frozen=True, slots=True)
class Secret:
    value: str | bytes


@dataclass(frozen=True, slots=True)
class Mailbox:
    name: str


Arg = str | bytes | int | Raw | Literal | Secret | Mailbox | Sequence["Arg"]


@dataclass(frozen=True, slots=True)
class RenderedCommand:
    tag: str
    parts: tuple[bytes, ...]
    log_line: str  # redacted, for debug logs

    @property
    def synchronizing(self) -> bool:
        return len(self.parts) > 1


class TagGenerator:
    """Unique tags per connection: ``M1``, ``M2``, ..."""

    def __init__(self, prefix: str = "M") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter)}"


def sequence_arg(ids: str | Sequence[int]) -> str:
    """A sequence set from a str (validated) or a list of ints (compressed)."""
    if isinstance(ids, str):
        if not is_sequence_set(ids):
            raise ValueError(f"invalid sequence set {ids!r}")
        return ids
    return compress(ids)


def format_internaldate(when: datetime) -> str:
    """``"17-Jul-1996 02:44:25 -0700"``; naive datetimes are taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} "
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


class CommandEncoder:
    """Renders commands for one connection's negotiated capabilities."""

    def __init__(
        self, *, literal_plus: bool = False, literal_minus: bool = False, utf8: bool = False
    ) -> None:
        self.literal_plus = literal_plus
        self.literal_minus = literal_minus
        self.utf8 = utf8

    def mailbox_bytes(self, name: str) -> bytes:
        if name.upper() == "INBOX":
            return b"INBOX"
        return name.encode("utf-8") if self.utf8 else encode_utf7(name)

    def render(self, tag: str, name: str, *args: Arg) -> RenderedCommand:
        parts: list[bytes] = []
        cur = bytearray(tag.encode("ascii") + b" " + name.encode("ascii"))
        log: list[str] = [f"{tag} {name}"]
        for arg in args:
            cur += b" "
            log.append(" ")
            cur = self._emit(arg, cur, parts, log)
        cur += b"\r\n"
        parts.append(bytes(cur))
        return RenderedCommand(tag, tuple(parts), "".join(log))

    # -- internals ----------------------------------------------------------------------------

    def _emit(self, arg: Arg, cur: bytearray, parts: list[bytes], log: list[str]) -> bytearray:
        if isinstance(arg, Raw):
            v = arg.value.encode("utf-8") if isinstance(arg.value, str) else arg.value
            if b"\r" in v or b"\n" in v:
                raise ValueError("CR/LF inside a raw command argument")
            cur += v
            log.append(v.decode("utf-8", "replace"))
            return cur
        if isinstance(arg, bool):
            raise TypeError("bool is not an IMAP argument")
        if isinstance(arg, int):
            s = str(arg)
            cur += s.encode("ascii")
            log.append(s)
            return cur
        if isinstance(arg, Mailbox):
            return self._string(self.mailbox_bytes(arg.name), cur, parts, log, secret=False)
        if isinstance(arg, Secret):
            v = arg.value.encode("utf-8") if isinstance(arg.value, str) else arg.value
            return self._string(v, cur, parts, log, secret=True)
        if isinstance(arg, str):
            return self._string(arg.encode("utf-8"), cur, parts, log, secret=False)
        if isinstance(arg, bytes):
            return self._literal(arg, cur, parts, log, binary=False, secret=False)
        if isinstance(arg, Literal):
            return self._literal(arg.data, cur, parts, log, binary=arg.binary, secret=False)
        if isinstance(arg, list | tuple):
            cur += b"("
            log.append("(")
            for i, item in enumerate(arg):
                if i:
                    cur += b" "
                    log.append(" ")
                cur = self._emit(item, cur, parts, log)
            cur += b")"
            log.append(")")
            return cur
        raise TypeError(f"unsupported IMAP argument {type(arg).__name__}")

    def _string(
        self, data: bytes, cur: bytearray, parts: list[bytes], log: list[str], *, secret: bool
    ) -> bytearray:
        quotable = (
            len(data) <= MAX_QUOTED_LENGTH
            and b"\r" not in data
            and b"\n" not in data
            and b"\x00" not in data
            and (self.utf8 or data.isascii())
        )
        if not quotable:
            return self._literal(data, cur, parts, log, binary=False, secret=secret)
        quoted = b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        cur += quoted
        log.append('"***"' if secret else quoted.decode("utf-8", "replace"))
        return cur

    def _literal(
        self,
        data: bytes,
        cur: bytearray,
        parts: list[bytes],
        log: list[str],
        *,
        binary: bool,
        secret: bool,
    ) -> bytearray:
        nonsync = self.literal_plus or (self.literal_minus and len(data) <= LITERAL_MINUS_MAX)
        prefix = b"~" if binary else b""
        marker = prefix + b"{" + str(len(data)).encode() + (b"+}" if nonsync else b"}")
        cur += marker + b"\r\n"
        log.append(f"{marker.decode()} <{'***' if secret else f'{len(data)} bytes'}>")
        if nonsync:
            cur += data
            return cur
        parts.append(bytes(cur))
        return bytearray(data)
