"""The stored RFC 5322 bytes seen the way Gmail's ``Message`` resource shows them.

Follows the ``MessagePart`` / ``MessagePartBody`` schemas of ``gmail.v1.json``: the root part has
``partId`` ``""``, its children ``"0"``, ``"1"`` …, theirs ``"0.0"`` …; container parts carry
``body {size: 0}``; leaves carry ``body {size, data}`` (base64url of the transfer-decoded bytes),
or ``body {size, attachmentId}`` when the part is an attachment (it has a filename). Header
values are unfolded and RFC 2047-decoded, in their original order.
"""

from __future__ import annotations

import email
import email.message
import email.utils
import html
import re
from collections.abc import Callable, Iterator
from email.header import decode_header, make_header
from typing import Any

from .util import b64url

SNIPPET_LENGTH = 200

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


def parse(raw: bytes) -> email.message.Message:
    """Parse without the strict modern policy: stored mail may be malformed."""
    return email.message_from_bytes(raw)


def decode_value(value: Any) -> str:
    """Unfold and decode a header value (encoded words, bad charsets tolerated)."""
    text = _FOLD.sub("", str(value))
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        return text


def headers_of(part: email.message.Message) -> list[dict[str, str]]:
    """``[{"name", "value"}]`` in order, as in ``MessagePart.headers``."""
    return [{"name": name, "value": decode_value(value)} for name, value in part.items()]


def header(msg: email.message.Message, name: str) -> str:
    """One decoded header value ("" if absent)."""
    value = msg.get(name)
    return "" if value is None else decode_value(value)


def filename_of(part: email.message.Message) -> str:
    """The part's filename (RFC 2231 and encoded words decoded), "" if none."""
    try:
        name = part.get_filename()
    except (LookupError, UnicodeError, ValueError):
        return ""
    return decode_value(name) if name else ""


def leaf_bytes(part: email.message.Message) -> bytes:
    """The transfer-decoded body of a leaf part."""
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes()
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def is_leaf(part: email.message.Message) -> bool:
    """Gmail shows ``message/rfc822`` parts as leaves (an attachment), like any non-multipart."""
    return not part.is_multipart() or part.get_content_type() == "message/rfc822"


def payload_tree(
    msg: email.message.Message,
    attachment_id: Callable[[str], str],
    *,
    headers_only: bool = False,
    header_filter: set[str] | None = None,
) -> dict[str, Any]:
    """The ``payload`` MessagePart for ``format=full`` (or ``metadata``: ``headers_only``)."""

    def visit(part: email.message.Message, part_id: str) -> dict[str, Any]:
        hdrs = headers_of(part)
        if header_filter is not None:
            hdrs = [h for h in hdrs if h["name"].lower() in header_filter]
        node: dict[str, Any] = {
            "partId": part_id,
            "mimeType": part.get_content_type(),
            "filename": filename_of(part),
            "headers": hdrs,
        }
        if headers_only:
            return {
                "partId": part_id,
                "mimeType": node["mimeType"],
                "filename": "",
                "headers": hdrs,
            }
        if is_leaf(part):
            data = leaf_bytes(part)
            if node["filename"]:
                node["body"] = {"attachmentId": attachment_id(part_id), "size": len(data)}
            else:
                node["body"] = {"size": len(data)}
                if data:
                    node["body"]["data"] = b64url(data)
        else:
            node["body"] = {"size": 0}
            children = part.get_payload()
            prefix = f"{part_id}." if part_id else ""
            node["parts"] = [
                visit(child, f"{prefix}{index}") for index, child in enumerate(children or [])
            ]
        return node

    return visit(msg, "")


def iter_leaves(
    msg: email.message.Message, part_id: str = ""
) -> Iterator[tuple[str, email.message.Message]]:
    """(partId, part) of every leaf, numbered as in ``payload_tree``."""
    if is_leaf(msg):
        yield part_id, msg
        return
    prefix = f"{part_id}." if part_id else ""
    for index, child in enumerate(msg.get_payload() or []):
        yield from iter_leaves(child, f"{prefix}{index}")


def find_part(msg: email.message.Message, part_id: str) -> email.message.Message | None:
    """The leaf with ``part_id``."""
    for pid, part in iter_leaves(msg):
        if pid == part_id:
            return part
    return None


def _text(part: email.message.Message) -> str:
    data = leaf_bytes(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def body_text(msg: email.message.Message) -> str:
    """Plain text of the message: text/plain parts, else text/html with tags stripped."""
    plain: list[str] = []
    rich: list[str] = []
    for _pid, part in iter_leaves(msg):
        if filename_of(part):
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(_text(part))
        elif ctype == "text/html":
            rich.append(html.unescape(_TAGS.sub(" ", _text(part))))
    return "\n".join(plain or rich)


def snippet(msg: email.message.Message) -> str:
    """Gmail's ``snippet``: the start of the text, whitespace collapsed, HTML-escaped."""
    text = _SPACE.sub(" ", body_text(msg)).strip()[:SNIPPET_LENGTH]
    return html.escape(text, quote=True).replace("&#x27;", "&#39;")


def attachment_names(msg: email.message.Message) -> list[str]:
    """Filenames of all attachment parts."""
    return [name for _pid, part in iter_leaves(msg) if (name := filename_of(part))]


def addresses(msg: email.message.Message, *names: str) -> list[str]:
    """Lower-cased addresses in the given headers."""
    values = [decode_value(v) for name in names for v in msg.get_all(name, [])]
    return [addr.lower() for _n, addr in email.utils.getaddresses(values) if addr]


def message_ids(value: str) -> list[str]:
    """Message-IDs (``<...>``) found in a References / In-Reply-To / Message-ID value."""
    found = re.findall(r"<[^<>\s]+>", value)
    if not found and value.strip():
        found = [f"<{value.strip().strip('<>')}>"]
    return found


def normalized_subject(subject: str) -> str:
    """Subject without reply/forward prefixes, for Gmail's thread matching."""
    previous = None
    text = subject.strip()
    while previous != text:
        previous = text
        text = re.sub(r"^(re|fw|fwd|aw|wg|sv|vs|tr)\s*(\[\d+\])?\s*:\s*", "", text, flags=re.I)
    return _SPACE.sub(" ", text).strip().lower()
