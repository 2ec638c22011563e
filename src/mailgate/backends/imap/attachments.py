"""Streaming a message section in bounded chunks, transfer-decoded on the way (flat memory).

A 50 MB attachment is never held whole: :func:`stream_section` fetches
``BODY.PEEK[part]<offset.CHUNK_SIZE>`` one chunk at a time and feeds each chunk to an incremental
decoder (:func:`make_decoder`), so memory stays at about two chunks whatever the size.

Decoders (pure, ``feed(bytes) -> bytes`` then ``flush() -> bytes``) give exactly what decoding the
whole body at once with :func:`mailgate.protocols.mime.decode_body` gives:

- base64: junk characters are dropped; complete 4-character groups are decoded as they arrive and
  at most 3 characters wait for the next chunk; a ``=`` ends a block (blocks concatenated after
  their padding are decoded one by one, missing padding is repaired).
- quoted-printable: complete lines are decoded as they arrive; the rest of a line waits, so an
  ``=XX`` escape or an ``=\\r\\n`` soft break split across chunks is decoded whole. A line longer
  than :data:`MAX_QP_CARRY` (broken or hostile) is cut anywhere but inside an escape.
- anything else (7bit, 8bit, binary, unknown): bytes pass through.
"""

from __future__ import annotations

import binascii
from collections.abc import AsyncIterator
from typing import Protocol

from mailgate.backends.imap.client import ImapClient
from mailgate.protocols.mime import decode_body

#: Bytes fetched per round trip when streaming a section.
CHUNK_SIZE = 1024 * 1024
#: Most undecoded quoted-printable bytes kept waiting for the end of their line.
MAX_QP_CARRY = 64 * 1024
#: Largest uuencoded body decoded (it is decoded whole, uuencode being rare and old).
MAX_UUENCODE_BYTES = 64 * 1024 * 1024

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(sorted(set(range(256)) - set(_B64_ALPHABET) - {ord("=")}))


class StreamDecoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def _b64_block(clean: bytes) -> bytes:
    """Decode one block (no ``=`` inside), repairing its padding like the MIME parser does."""
    extra = len(clean) % 4
    if extra == 1:
        clean = clean[:-1]
    elif extra:
        clean += b"=" * (4 - extra)
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        return b""


class Base64Decoder:
    def __init__(self) -> None:
        self._carry = b""  # alphabet characters of the current block not decoded yet

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        clean = data.translate(None, _B64_JUNK)
        while clean:
            pad = clean.find(b"=")
            if pad == -1:
                buf = self._carry + clean
                cut = len(buf) - len(buf) % 4
                if cut:
                    out.append(_b64_block(buf[:cut]))
                self._carry = buf[cut:]
                break
            block = self._carry + clean[:pad]
            self._carry = b""
            if block:
                out.append(_b64_block(block))
            clean = clean[pad:].lstrip(b"=")
        return b"".join(out)

    def flush(self) -> bytes:
        carry, self._carry = self._carry, b""
        return _b64_block(carry) if carry else b""


class QuotedPrintableDecoder:
    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        buf = self._carry + data
        cut = buf.rfind(b"\n") + 1
        if cut == 0 and len(buf) > MAX_QP_CARRY:
            cut = len(buf)
            escape = buf.rfind(b"=", max(0, cut - 2), cut)
            if escape != -1:
                cut = escape
        self._carry = buf[cut:]
        return binascii.a2b_qp(buf[:cut]) if cut else b""

    def flush(self) -> bytes:
        carry, self._carry = self._carry, b""
        return binascii.a2b_qp(carry) if carry else b""


class PassThrough:
    def feed(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class WholeDecoder:
    """Collects the body and decodes it at the end (uuencode); bounded by a limit."""

    def __init__(self, encoding: str, limit: int = MAX_UUENCODE_BYTES) -> None:
        self._encoding = encoding
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit

    def feed(self, data: bytes) -> bytes:
        if self._size + len(data) <= self._limit:
            self._parts.append(data)
            self._size += len(data)
        return b""

    def flush(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return decode_body(data, self._encoding)


def make_decoder(encoding: str | None) -> StreamDecoder:
    """The incremental decoder for a Content-Transfer-Encoding (case-insensitive)."""
    cte = (encoding or "").strip().strip("\"'").lower()
    if cte == "base64":
        return Base64Decoder()
    if cte in ("quoted-printable", "quoted_printable", "qp"):
        return QuotedPrintableDecoder()
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        return WholeDecoder(cte)
    return PassThrough()


async def stream_section(
    client: ImapClient,
    uid: int,
    section: str,
    decoder: StreamDecoder | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> AsyncIterator[bytes]:
    """Yield ``BODY[section]`` of message ``uid`` (the selected mailbox) chunk by chunk, decoded.

    ``section`` ``""`` is the whole message. Stops at the first short chunk, or when the message
    disappears (expunged by another client meanwhile).
    """
    decoder = decoder or PassThrough()
    offset = 0
    while True:
        item = f"BODY.PEEK[{section}]<{offset}.{chunk_size}>"
        fetched = await client.uid_fetch([uid], [item])
        data = fetched[0].section(section) if fetched else None
        if not data:
            break
        out = decoder.feed(data)
        if out:
            yield out
        if len(data) < chunk_size:
            break
        offset += len(data)
    tail = decoder.flush()
    if tail:
        yield tail
