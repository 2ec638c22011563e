"""Content-Transfer-Encoding decoding (RFC 2045), tolerant; plus format=flowed (RFC 3676).

Unknown encodings return the bytes unchanged (as RFC 2045 says to treat them as opaque data the
user may still want).
"""

from __future__ import annotations

import binascii
import re

from .headers import b64decode_loose

_UU_BEGIN = re.compile(rb"^begin(?:-base64)?\s+[0-7]{3,4}\s+", re.MULTILINE)


def decode_uu(data: bytes) -> bytes:
    """uuencode, best effort: every line between ``begin`` and ``end`` (or the end)."""
    start = _UU_BEGIN.search(data)
    lines = data[start.end() :].split(b"\n")[1:] if start else data.split(b"\n")
    out = bytearray()
    for raw_line in lines:
        line = raw_line.rstrip(b"\r")
        if line.strip() == b"end":
            break
        if not line or line in (b"`", b" "):
            continue
        try:
            out += binascii.a2b_uu(line)
        except (binascii.Error, ValueError):
            # Broken writers pad lines wrongly: decode the length the first char announces.
            try:
                length = ((line[0] - 32) & 63) * 4 // 3 + 1
                out += binascii.a2b_uu(line[:length].ljust(length, b" "))
            except (binascii.Error, ValueError, IndexError):
                continue
    return bytes(out)


def decode_body(data: bytes, transfer_encoding: str | None) -> bytes:
    """Undo a Content-Transfer-Encoding. Never raises."""
    cte = (transfer_encoding or "").strip().strip("\"'").lower()
    if not data:
        return b""
    if cte == "base64":
        return b64decode_loose(data)
    if cte in ("quoted-printable", "quoted_printable", "qp"):
        try:
            return binascii.a2b_qp(data)
        except (binascii.Error, ValueError):
            return data
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        return decode_uu(data)
    return data


def unflow(text: str, *, delsp: bool = False) -> str:
    """Join the soft line breaks of format=flowed text (RFC 3676); quote depth is kept."""
    out: list[str] = []
    current: str | None = None
    current_depth = 0
    for raw_line in text.split("\n"):
        line = raw_line.removesuffix("\r")
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if current is not None and depth == current_depth:
            current += content
        else:
            if current is not None:
                out.append(">" * current_depth + (" " if current_depth else "") + current)
            current = content
            current_depth = depth
        if not flowed:
            out.append(">" * current_depth + (" " if current_depth else "") + current)
            current = None
    if current is not None:
        out.append(">" * current_depth + (" " if current_depth else "") + current)
    return "\n".join(out)
