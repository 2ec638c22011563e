"""Header field values: RFC 2047 decoding, Content-Type/-Disposition parameters, dates, ids.

Everything here is tolerant: broken encoded words, raw 8-bit bytes, unterminated quotes and
impossible dates give a best-effort value (or None), never an exception.
"""

from __future__ import annotations

import binascii
import email.utils
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.policy import compat32

from .charsets import decode_declared, decode_header_bytes
from .limits import MAX_HEADER_VALUE_CHARS

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_NEWLINES = re.compile(r"[\r\n]+")
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_MSG_ID = re.compile(r"<([^<>]*)>")


def unfold(value: str) -> str:
    """RFC 5322 unfolding: remove the line breaks of folded lines (the white space stays)."""
    if "\n" not in value and "\r" not in value:
        return value
    return _NEWLINES.sub("", _FOLD.sub("", value))


def _b64_chunk(clean: bytes) -> bytes:
    extra = len(clean) % 4
    if extra == 1:
        clean = clean[:-1]
    elif extra:
        clean += b"=" * (4 - extra)
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        return b""


def b64decode_loose(data: bytes) -> bytes:
    """Base64 that ignores junk characters, repairs missing padding and decodes blocks that
    were concatenated after their padding."""
    pad = data.find(b"=")
    if pad == -1 or not data[pad:].strip(b"= \t\r\n"):
        try:
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            pass
    return b"".join(_b64_chunk(_BASE64_JUNK.sub(b"", c)) for c in data.split(b"=") if c)


def _decode_word(encoding: str, text: str) -> bytes:
    raw = text.encode("ascii", "replace")
    if encoding in "bB":
        return b64decode_loose(raw)
    try:
        return binascii.a2b_qp(raw, header=True)
    except (binascii.Error, ValueError):
        return raw


def decode_header_value(value: str | bytes, fallback_charset: str | None = None) -> str:
    """Decode RFC 2047 encoded words; raw 8-bit bytes as UTF-8, then the message's charset,
    then windows-1252. Adjacent encoded words in one charset are joined before decoding (a
    character may be split across them); white space between encoded words is dropped."""
    if isinstance(value, bytes | bytearray):
        value = decode_header_bytes(bytes(value), fallback_charset)
    if len(value) > MAX_HEADER_VALUE_CHARS:
        value = value[:MAX_HEADER_VALUE_CHARS]
    value = unfold(value)
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[tuple[str, bytearray]] = []

    def flush() -> None:
        for charset, data in pending:
            out.append(decode_declared(bytes(data), charset))
        pending.clear()

    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        if between and (not pending or not between.isspace()):
            flush()
            out.append(between)
        charset = match.group(1).split("*", 1)[0].lower()
        data = _decode_word(match.group(2), match.group(3))
        if pending and pending[-1][0] == charset:
            pending[-1][1].extend(data)
        else:
            pending.append((charset, bytearray(data)))
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


@dataclass(slots=True)
class ContentFields:
    """What the Content-Type and Content-Disposition fields of one entity say."""

    content_type: str = "text/plain"
    charset: str | None = None
    boundary: str | None = None
    disposition: str | None = None
    filename: str | None = None
    method: str | None = None
    format_flowed: bool = False
    delsp: bool = False
    start: str | None = None
    defects: list[str] = field(default_factory=list)


def parse_content_fields(
    content_type: str | None,
    disposition: str | None,
    *,
    default_type: str = "text/plain",
) -> ContentFields:
    """Parse Content-Type and Content-Disposition (parameters with RFC 2231 continuations and
    charsets, quoted RFC 2047 filenames) using the stdlib's tolerant compat32 code."""
    out = ContentFields(content_type=default_type)
    msg = Message(policy=compat32)
    msg.set_default_type(default_type)
    try:
        if content_type is not None:
            msg["content-type"] = content_type[:MAX_HEADER_VALUE_CHARS]
        if disposition is not None:
            msg["content-disposition"] = disposition[:MAX_HEADER_VALUE_CHARS]
        ctype = msg.get_content_type()
        if content_type is not None and "/" not in content_type.split(";", 1)[0]:
            out.defects.append(f"invalid content type {content_type[:60]!r}")
        out.content_type = ctype
    except Exception as exc:
        out.defects.append(f"unreadable content type: {type(exc).__name__}")
        return out
    try:
        charset = msg.get_param("charset")
        if charset is not None:
            out.charset = _param_str(charset).strip().strip("\"'").lower() or None
    except Exception:
        out.defects.append("unreadable charset parameter")
    try:
        boundary = msg.get_boundary()
        out.boundary = boundary or None
    except Exception:
        out.defects.append("unreadable boundary parameter")
    try:
        out.start = _optional(msg.get_param("start"))
        out.method = (_optional(msg.get_param("method")) or "").strip().upper() or None
        fmt = (_optional(msg.get_param("format")) or "").lower()
        out.format_flowed = fmt == "flowed"
        out.delsp = (_optional(msg.get_param("delsp")) or "").lower() == "yes"
    except Exception:
        out.defects.append("unreadable content type parameters")
    if disposition is not None:
        try:
            out.disposition = disposition.split(";", 1)[0].strip().lower() or None
        except Exception:
            out.defects.append("unreadable content disposition")
    try:
        filename = msg.get_filename()
    except Exception:
        filename = None
        out.defects.append("unreadable filename")
    if filename is not None:
        filename = filename.strip().strip('"').strip()
        if "=?" in filename:
            filename = decode_header_value(filename)
        out.filename = filename.replace("\x00", "") or None
    return out


def _param_str(value: object) -> str:
    if isinstance(value, tuple):  # undecoded RFC 2231 (charset, language, value)
        return email.utils.collapse_rfc2231_value(value)
    return str(value)


def _optional(value: object) -> str | None:
    if value is None:
        return None
    return _param_str(value).strip()


def parse_date(value: str | None) -> datetime | None:
    """RFC 5322 date (and common broken forms) as an aware datetime; naive ones are UTC."""
    if not value:
        return None
    value = value.strip()[:200]
    parsed: datetime | None = None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return parsed


def parse_message_id(value: str | None) -> str | None:
    """First ``<id>`` in a Message-ID / In-Reply-To value, with its brackets; a bare token gets
    brackets added; anything else is returned stripped."""
    if not value:
        return None
    match = _MSG_ID.search(value)
    if match is not None and match.group(1).strip():
        return f"<{match.group(1).strip()}>"
    token = value.strip()
    if not token:
        return None
    if " " not in token and "<" not in token and ">" not in token:
        return f"<{token}>"
    return token


def parse_references(value: str | None) -> list[str]:
    """Every ``<id>`` of a References value (bare tokens when there are no brackets)."""
    if not value:
        return []
    ids = [f"<{m.strip()}>" for m in _MSG_ID.findall(value) if m.strip()]
    if ids:
        return ids
    return [f"<{t}>" for t in re.split(r"[\s,]+", value) if t]
