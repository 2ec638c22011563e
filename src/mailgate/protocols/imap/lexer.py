"""Stage 1 and 2 of parsing: framing server bytes into responses, then tokenizing them.

**Framing** (:class:`Framer`): a response is a line ending in CRLF, except that a line ending in a
literal marker ``{n}`` (or ``~{n}`` for RFC 3516 literal8) is followed by exactly ``n`` bytes of
data and then the response continues. The framer buffers partial lines and literals and yields
each complete response as a :class:`Frame`: ``texts`` (the line pieces, markers removed) and
``literals`` (``len(literals) == len(texts) - 1``; literal *i* sits between text *i* and *i+1*).

**Tokenizing** (:func:`tokenize`): a frame becomes a nested Python list::

    atom (incl. NIL, numbers, flags)  → str           BODY[HEADER.FIELDS (SUBJECT)]<0> is one atom
    quoted string or literal          → bytes
    ( ... )                           → list

Atoms may contain ``]`` (some servers send unquoted ``[Gmail]/Sent``); a ``[`` inside an atom runs
to the matching ``]`` so that body section specifiers with spaces stay one atom.

Both stages enforce :class:`~.limits.ImapLimits` and raise :class:`ProtocolError` on garbage.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from mailgate.errors import ProtocolError

from .limits import DEFAULT_LIMITS, ImapLimits

__all__ = ["Frame", "Framer", "tokenize"]

_LITERAL_MARKER = re.compile(rb"~?\{(\d{1,12})\+?\}$")

# One token per match, found by ``findall`` in one C-level pass (no match objects): ``(``, ``)``,
# a quoted string with its quotes, an atom, or a single other non-space byte, which is an error
# (its first byte is in _BAD_FIRST: no atom, string or parenthesis starts with one). Spaces are
# skipped. The loops are unrolled (``[^"\\]*(?:\\.[^"\\]*)*``), so a long string or atom costs
# a few regex steps, not one per byte.
_TOKEN = re.compile(
    rb"""
     [()]                                             # open, close
    |"[^"\\]*(?:\\.[^"\\]*)*"                          # quoted string
    |(?:[^\x00-\x20()"{\x7f\[]+|\[[^\]\r\n]*\]|\[)+       # atom
    |[^ ]                                             # anything else: error
    """,
    re.VERBOSE | re.DOTALL,
)
_BAD_FIRST = frozenset(b'"{\x7f' + bytes(range(0x20)))
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)


class Frame(NamedTuple):
    """One complete server response, split at its literals (a tuple: cheap to build)."""

    texts: list[bytes]
    literals: list[bytes]

    @property
    def first(self) -> bytes:
        return self.texts[0]


class Framer:
    """Incremental framing of a byte stream into :class:`Frame` objects."""

    __slots__ = (
        "_buf",
        "_limits",
        "_literal_len",
        "_literals",
        "_scan_from",
        "_size",
        "_texts",
    )

    def __init__(self, limits: ImapLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buf = bytearray()
        self._texts: list[bytes] = []
        self._literals: list[bytes] = []
        self._literal_len = -1  # >= 0 while reading a literal
        self._size = 0
        self._scan_from = 0

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete response."""
        return len(self._buf) + self._size

    @property
    def idle(self) -> bool:
        """True when no partial response is buffered (safe point for STARTTLS)."""
        return not self._buf and not self._texts

    def _bulk_lines(self, buf: bytearray, pos: int, frames: list[Frame]) -> int:
        """Fast path: take every complete CRLF line from ``pos`` up to the first line that opens
        a literal, in one C-level split (the bulk of a big FETCH/LIST answer). Returns the new
        pos. Each byte is looked at a bounded number of times, so the work stays linear."""
        marker = buf.find(b"}\r\n", pos)
        last = buf.rfind(b"\n", pos, marker) if marker >= 0 else buf.rfind(b"\n", pos)
        if last <= pos or buf[last - 1] != 0x0D:
            return pos
        chunk = bytes(buf[pos : last - 1])
        if chunk.count(b"\n") != chunk.count(b"\r\n"):  # bare LFs: leave it to the slow path
            return pos
        lines = chunk.split(b"\r\n")
        if max(map(len, lines)) > self._limits.max_line_length:
            raise ProtocolError("IMAP response line too long")
        frames.extend([Frame([line], []) for line in lines])
        self._scan_from = 0
        return last + 1

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        limits = self._limits
        frames: list[Frame] = []
        pos = 0
        while True:
            if self._literal_len < 0 and not self._texts:
                pos = self._bulk_lines(buf, pos, frames)
            if self._literal_len >= 0:
                n = self._literal_len
                if len(buf) - pos < n:
                    break
                self._literals.append(bytes(buf[pos : pos + n]))
                pos += n
                self._literal_len = -1
                continue
            nl = buf.find(b"\n", max(pos, self._scan_from))
            if nl < 0:
                if len(buf) - pos > limits.max_line_length:
                    raise ProtocolError("IMAP response line too long")
                self._scan_from = len(buf)
                break
            self._scan_from = 0
            end = nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl
            if end - pos > limits.max_line_length:
                raise ProtocolError("IMAP response line too long")
            line = bytes(buf[pos:end])
            pos = nl + 1
            self._size += len(line)
            if line.endswith(b"}"):
                m = _LITERAL_MARKER.search(line)
                if m is not None:
                    n = int(m.group(1))
                    if n > limits.max_literal_size:
                        raise ProtocolError(f"IMAP literal of {n} bytes exceeds the limit")
                    if len(self._literals) >= limits.max_literals_per_response:
                        raise ProtocolError("too many literals in one IMAP response")
                    self._size += n
                    if self._size > limits.max_response_size:
                        raise ProtocolError("IMAP response too large")
                    self._texts.append(line[: m.start()])
                    self._literal_len = n
                    continue
            if self._size > limits.max_response_size:
                raise ProtocolError("IMAP response too large")
            self._texts.append(line)
            frames.append(Frame(self._texts, self._literals))
            self._texts = []
            self._literals = []
            self._size = 0
        if pos:
            del buf[:pos]
            if self._scan_from:
                self._scan_from -= pos
        return frames


def tokenize(frame: Frame, limits: ImapLimits = DEFAULT_LIMITS, start: int = 0) -> list[Any]:
    """Tokenize a frame (from byte ``start`` of its first text) into a nested list."""
    root: list[Any] = []
    stack: list[list[Any]] = [root]
    cur = root
    count = 0
    max_depth = limits.max_nesting_depth
    max_tokens = limits.max_tokens_per_response
    literals = frame.literals
    bad_first = _BAD_FIRST
    for index, text in enumerate(frame.texts):
        tokens = _TOKEN.findall(text, start if index == 0 else 0)
        count += len(tokens)
        if count > max_tokens:
            raise ProtocolError("too many tokens in one IMAP response")
        for tok in tokens:
            first = tok[0]
            if first == 0x28:  # (
                if len(stack) > max_depth:
                    raise ProtocolError("IMAP response nested too deeply")
                new: list[Any] = []
                cur.append(new)
                stack.append(new)
                cur = new
            elif first == 0x29:  # )
                if len(stack) == 1:
                    raise ProtocolError("unbalanced ')' in IMAP response")
                stack.pop()
                cur = stack[-1]
            elif first == 0x22 and len(tok) > 1 and tok[-1] == 0x22:  # "quoted"
                q = tok[1:-1]
                if b"\\" in q:
                    q = _UNESCAPE.sub(rb"\1", q)
                cur.append(q)
            elif first in bad_first:
                raise ProtocolError(f"unexpected byte {tok!r} in IMAP response")
            else:
                cur.append(tok.decode("utf-8", "surrogateescape"))
        if index < len(literals):
            cur.append(literals[index])
    if len(stack) != 1:
        raise ProtocolError("unbalanced '(' in IMAP response")
    return root
