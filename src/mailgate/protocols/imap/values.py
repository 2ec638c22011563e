"""Stage 3 helpers: turn tokens (``str`` atom, ``bytes`` string, ``list``) into typed values.

Strict where a wrong value would corrupt state (numbers raise :class:`ProtocolError`), tolerant
where servers differ harmlessly (an atom where a string belongs, a string where a number belongs).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from typing import Any

from mailgate.errors import ProtocolError

from .utf7 import decode_utf7

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_INTERNALDATE = re.compile(
    rb"^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\s*$"
)


def is_nil(tok: Any) -> bool:
    return isinstance(tok, str) and tok.upper() == "NIL"


def to_int(tok: Any, what: str = "number") -> int:
    """A number token (atom, or a string some servers send instead)."""
    if isinstance(tok, str | bytes) and tok.isascii() and tok.isdigit() and len(tok) <= 20:
        return int(tok)
    raise ProtocolError(f"expected {what}, got {_show(tok)}")


def opt_int(tok: Any) -> int | None:
    """A number, or None for NIL / anything unparseable (tolerant fields like body size)."""
    if isinstance(tok, str | bytes) and tok.isascii() and tok.isdigit() and len(tok) <= 20:
        return int(tok)
    return None


def nstring(tok: Any) -> bytes | None:
    """``nstring``: bytes, None for NIL; an atom is accepted as its bytes."""
    if isinstance(tok, bytes):
        return tok
    if isinstance(tok, str):
        if tok.upper() == "NIL":
            return None
        return tok.encode("utf-8", "surrogateescape")
    if isinstance(tok, list) and not tok:
        return None
    raise ProtocolError(f"expected a string, got {_show(tok)}")


def astring_bytes(tok: Any) -> bytes:
    """``astring`` as raw bytes (atom or string)."""
    if isinstance(tok, bytes):
        return tok
    if isinstance(tok, str):
        return tok.encode("utf-8", "surrogateescape")
    raise ProtocolError(f"expected a string, got {_show(tok)}")


def text(tok: Any) -> str | None:
    """An nstring as text (UTF-8, invalid bytes replaced), None for NIL."""
    if tok.__class__ is bytes:  # the common case first: a quoted string
        return tok.decode("utf-8", "replace")
    if isinstance(tok, list):
        return None
    raw = nstring(tok)
    return None if raw is None else raw.decode("utf-8", "replace")


def upper_text(tok: Any) -> str | None:
    v = text(tok)
    return None if v is None else v.upper()


def header_text(tok: Any) -> str | None:
    """An nstring that may carry RFC 2047 encoded words (subjects, display names)."""
    value = tok.decode("utf-8", "replace") if tok.__class__ is bytes else text(tok)
    if value is None or "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError, AssertionError):
        return value


def mailbox_name(raw: bytes, *, utf8: bool = False) -> str:
    """Decode a mailbox name from the wire: modified UTF-7, or UTF-8 (UTF8=ACCEPT / 8-bit)."""
    if utf8 or any(b > 0x7F for b in raw):
        return raw.decode("utf-8", "replace")
    try:
        return decode_utf7(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def flag_list(tok: Any) -> tuple[str, ...]:
    """A parenthesised list of flags/atoms as a tuple of str (server's case kept)."""
    if not isinstance(tok, list):
        if is_nil(tok):
            return ()
        raise ProtocolError(f"expected a flag list, got {_show(tok)}")
    out: list[str] = []
    for item in tok:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, bytes):
            out.append(item.decode("utf-8", "replace"))
        else:
            raise ProtocolError("nested list inside a flag list")
    return tuple(out)


def internaldate(tok: Any) -> datetime | None:
    """``"17-Jul-1996 02:44:25 -0700"`` → aware datetime; None for NIL or unparseable."""
    raw = nstring(tok)
    if raw is None:
        return None
    m = _INTERNALDATE.match(raw)
    if m is None:
        return None
    month = _MONTHS.get(m.group(2).decode().upper())
    if month is None:
        return None
    sign = -1 if m.group(7) == b"-" else 1
    offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9))) * sign
    try:
        return datetime(
            int(m.group(3)),
            month,
            int(m.group(1)),
            int(m.group(4)),
            int(m.group(5)),
            int(m.group(6)),
            tzinfo=timezone(offset),
        )
    except ValueError:
        return None


def _show(tok: Any) -> str:
    r = repr(tok)
    return r if len(r) <= 60 else r[:57] + "..."
