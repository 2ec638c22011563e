"""Message, attachment and text ids for IMAP accounts (DESIGN.md §1).

Each ``(path, UIDVALIDITY)`` pair of an account has a small mailbox number; ids are built from it
and the message UID, so a message id names one message for as long as its mailbox keeps its
UIDVALIDITY, and survives an index flush::

    message id     base64url( mailbox:u32be | uid:u32be )                        11 chars
    attachment id  base64url( mailbox:u32be | uid:u32be | part )                 part = b"1.2"
    text id        base64url( mailbox:u32be | uid:u32be | part *( "," part ) )  b"1.1,1.2"

base64url is RFC 4648 §5 without ``=`` padding. A part is an IMAP section part number in ASCII:
``nz-number *("." nz-number)``, optionally followed by ``.TEXT`` or ``.HEADER`` (the body or
header of an enclosed ``message/rfc822``). Part numbers never contain ``","``, so the text id's
comma-separated list is unambiguous.

Packing is for ids mailgate makes itself: invalid arguments are a programming error and raise
:class:`ValueError`. Unpacking is for ids a client sends: any malformed input (wrong length, bad
or non-canonical base64, UID 0, a bad part number, longer than the named limits below) raises
:class:`mailgate.errors.NotFound` with code ``MessageNotFound`` (``AttachmentNotFound`` for
attachment ids) and never anything else, because to a client a malformed id is simply an id
that names nothing.

Gmail API and Microsoft Graph accounts do not use this module: their message and attachment ids
are the provider's own opaque strings, passed through unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Sequence

from mailgate.errors import NotFound

__all__ = [
    "MAX_ATTACHMENT_ID_LENGTH",
    "MAX_PART_LENGTH",
    "MAX_TEXT_ID_LENGTH",
    "MAX_TEXT_PARTS",
    "MESSAGE_ID_LENGTH",
    "is_part_number",
    "pack_attachment_id",
    "pack_message_id",
    "pack_text_id",
    "unpack_attachment_id",
    "unpack_message_id",
    "unpack_text_id",
]

#: Length of every message id (8 bytes → 11 base64url characters).
MESSAGE_ID_LENGTH = 11
#: Longest part number accepted ("1.2.3..." with its optional ".TEXT"/".HEADER").
MAX_PART_LENGTH = 128
#: Most text parts one text id may name (a message has text/plain, text/html, a few more).
MAX_TEXT_PARTS = 16
#: Longest attachment id string accepted before any decoding is attempted.
MAX_ATTACHMENT_ID_LENGTH = 4 * ((8 + MAX_PART_LENGTH + 2) // 3)
#: Longest text id string accepted before any decoding is attempted.
MAX_TEXT_ID_LENGTH = 4 * ((8 + MAX_TEXT_PARTS * (MAX_PART_LENGTH + 1) + 2) // 3)

_U32_MAX = 2**32 - 1
_HEAD = struct.Struct(">II")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
# nz-number (no leading zero), at most 10 digits; the value bound is checked separately.
_NZ = r"[1-9][0-9]{0,9}"
_PART_RE = re.compile(rf"{_NZ}(?:\.{_NZ})*(?:\.TEXT|\.HEADER)?")


def is_part_number(part: str) -> bool:
    """True when ``part`` is a section part number an id may carry (e.g. ``"1.2"``)."""
    if len(part) > MAX_PART_LENGTH or not _PART_RE.fullmatch(part):
        return False
    return all(int(n) <= _U32_MAX for n in part.split(".") if n.isdigit())


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _head(mailbox: int, uid: int) -> bytes:
    if isinstance(mailbox, bool) or not isinstance(mailbox, int) or not 0 <= mailbox <= _U32_MAX:
        raise ValueError(f"mailbox number out of range: {mailbox!r}")
    if isinstance(uid, bool) or not isinstance(uid, int) or not 1 <= uid <= _U32_MAX:
        raise ValueError(f"UID out of range: {uid!r}")
    return _HEAD.pack(mailbox, uid)


def _check_part(part: str) -> bytes:
    if not isinstance(part, str) or not is_part_number(part):
        raise ValueError(f"bad part number: {part!r}"[:200])
    return part.encode("ascii")


def pack_message_id(mailbox: int, uid: int) -> str:
    """``(mailbox number, UID)`` → message id."""
    return _encode(_head(mailbox, uid))


def pack_attachment_id(mailbox: int, uid: int, part: str) -> str:
    """``(mailbox number, UID, part number)`` → attachment id."""
    return _encode(_head(mailbox, uid) + _check_part(part))


def pack_text_id(mailbox: int, uid: int, parts: Sequence[str]) -> str:
    """``(mailbox number, UID, text part numbers)`` → text id; order of ``parts`` is kept."""
    if isinstance(parts, str):
        raise ValueError("parts must be a sequence of part numbers, not one string")
    if not 1 <= len(parts) <= MAX_TEXT_PARTS:
        raise ValueError(f"a text id names 1 to {MAX_TEXT_PARTS} parts, got {len(parts)}")
    return _encode(_head(mailbox, uid) + b",".join(_check_part(p) for p in parts))


def _decode(s: str, *, max_length: int, what: str, code: str) -> tuple[int, int, bytes]:
    """Decode a canonical base64url id into (mailbox, uid, tail) or raise NotFound."""
    error = NotFound(f"{what} not found", code)
    if not isinstance(s, str) or len(s) > max_length or len(s) % 4 == 1:
        raise error
    if not _B64URL_RE.fullmatch(s):
        raise error
    try:
        raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError):
        raise error from None
    # Reject aliases: unused low bits in the last character must be zero.
    if len(raw) < 8 or _encode(raw) != s:
        raise error
    mailbox, uid = _HEAD.unpack_from(raw)
    if uid == 0:
        raise error
    return mailbox, uid, raw[8:]


def _decode_part(raw: bytes, error: NotFound) -> str:
    try:
        part = raw.decode("ascii")
    except UnicodeDecodeError:
        raise error from None
    if not is_part_number(part):
        raise error
    return part


def unpack_message_id(s: str) -> tuple[int, int]:
    """Message id → ``(mailbox number, UID)``; anything malformed raises NotFound."""
    mailbox, uid, tail = _decode(
        s, max_length=MESSAGE_ID_LENGTH, what="Message", code="MessageNotFound"
    )
    if tail:
        raise NotFound("Message not found", "MessageNotFound")
    return mailbox, uid


def unpack_attachment_id(s: str) -> tuple[int, int, str]:
    """Attachment id → ``(mailbox number, UID, part number)``; malformed raises NotFound."""
    mailbox, uid, tail = _decode(
        s, max_length=MAX_ATTACHMENT_ID_LENGTH, what="Attachment", code="AttachmentNotFound"
    )
    part = _decode_part(tail, NotFound("Attachment not found", "AttachmentNotFound"))
    return mailbox, uid, part


def unpack_text_id(s: str) -> tuple[int, int, list[str]]:
    """Text id → ``(mailbox number, UID, text part numbers)``; malformed raises NotFound."""
    mailbox, uid, tail = _decode(
        s, max_length=MAX_TEXT_ID_LENGTH, what="Message", code="MessageNotFound"
    )
    error = NotFound("Message not found", "MessageNotFound")
    chunks = tail.split(b",")
    if len(chunks) > MAX_TEXT_PARTS:
        raise error
    return mailbox, uid, [_decode_part(c, error) for c in chunks]
