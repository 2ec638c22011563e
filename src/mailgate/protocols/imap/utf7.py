"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3), both directions.

Printable US-ASCII except ``&`` stands for itself; ``&`` is ``&-``; every other run of characters
is ``&`` + base64 of its UTF-16BE form (``,`` instead of ``/``, no ``=`` padding) + ``-``.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["decode_utf7", "encode_utf7"]


def _b64_run(run: str) -> bytes:
    raw = run.encode("utf-16-be")
    return b"&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",") + b"-"


def encode_utf7(name: str) -> bytes:
    """Encode a mailbox name to modified UTF-7 bytes."""
    out = bytearray()
    run: list[str] = []
    for ch in name:
        code = ord(ch)
        if 0x20 <= code <= 0x7E:
            if run:
                out += _b64_run("".join(run))
                run.clear()
            out += b"&-" if ch == "&" else ch.encode("ascii")
        else:
            run.append(ch)
    if run:
        out += _b64_run("".join(run))
    return bytes(out)


def decode_utf7(data: bytes) -> str:
    """Decode modified UTF-7 bytes to a str. Raises :class:`ValueError` on malformed input."""
    if b"&" not in data:
        try:
            return data.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError("8-bit data in a modified UTF-7 name") from exc
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        amp = data.find(b"&", i)
        if amp < 0:
            out.append(_ascii(data[i:]))
            break
        out.append(_ascii(data[i:amp]))
        end = data.find(b"-", amp + 1)
        if end < 0:
            raise ValueError("unterminated modified UTF-7 shift sequence")
        chunk = data[amp + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(b",", b"/")
            b64 += b"=" * (-len(b64) % 4)
            try:
                raw = base64.b64decode(b64, validate=True)
                out.append(raw.decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ValueError("bad modified UTF-7 sequence") from exc
        i = end + 1
    return "".join(out)


def _ascii(part: bytes) -> str:
    try:
        return part.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError("8-bit data in a modified UTF-7 name") from exc
