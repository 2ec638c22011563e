"""Raw RFC 5322 message -> ``ParsedMessage``: envelope, headers, parts, attachments and text.

Which leaves are body text and which are attachments (the message's own, not those of enclosed
messages):

- body text: text/plain or text/html that is not ``Content-Disposition: attachment`` and has no
  filename. Inside a multipart/alternative the plain and HTML versions are alternatives; body
  text outside any alternative (a footer after an attachment, say) is its own group. ``plain``
  joins the plain text of every group (HTML converted where a group has no plain version), and
  ``html`` the HTML of every group (plain converted where a group has none).
- every other leaf is an attachment, and so is each message/rfc822 part (whose own parts are
  listed in ``parts`` with ``in_message`` but are not attachments of this message).
- ``embedded``: its Content-ID is referenced by ``cid:`` from the HTML; ``inline``: disposition
  inline, or an image inside multipart/related, or embedded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .addresses import parse_addresses
from .charsets import decode_header_bytes, decode_text
from .classify import is_auto_reply, parse_delivery_status
from .headers import (
    decode_header_value,
    parse_date,
    parse_message_id,
    parse_references,
    unfold,
)
from .html import find_cid_references, html_to_text, text_to_html
from .model import Address, AttachmentInfo, DeliveryStatus, ParsedMessage, PartInfo
from .structure import Entity, parse_tree
from .transfer import decode_body, unflow

TEXT_TYPES = ("*", "plain", "html")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")


@dataclass(slots=True)
class _Leaf:
    entity: Entity
    info: PartInfo
    group: int


@dataclass(slots=True)
class _Walk:
    parts: list[tuple[Entity, PartInfo]] = field(default_factory=list)
    attachments: list[AttachmentInfo] = field(default_factory=list)
    body: list[_Leaf] = field(default_factory=list)


def _part_info(entity: Entity, *, related: bool, in_message: bool) -> PartInfo:
    return PartInfo(
        part=entity.part,
        content_type=entity.content_type,
        charset=entity.charset,
        transfer_encoding=entity.transfer_encoding,
        encoded_size=entity.encoded_size,
        disposition=entity.disposition,
        filename=entity.filename,
        content_id=entity.content_id,
        description=entity.description,
        method=entity.method if entity.content_type == "text/calendar" else None,
        format_flowed=entity.format_flowed,
        delsp=entity.delsp,
        related=related,
        in_message=in_message,
    )


def _is_body_text(entity: Entity) -> bool:
    return (
        entity.content_type in ("text/plain", "text/html")
        and entity.disposition != "attachment"
        and not entity.filename
    )


def _attachment(info: PartInfo) -> AttachmentInfo:
    inline = info.disposition == "inline" or (
        info.related and info.content_type.startswith("image/") and info.disposition is None
    )
    return AttachmentInfo(
        part=info.part,
        content_type=info.content_type,
        encoded_size=info.encoded_size,
        filename=info.filename,
        content_id=info.content_id,
        disposition=info.disposition,
        inline=inline,
        related=info.related,
        method=info.method,
        charset=info.charset,
        transfer_encoding=info.transfer_encoding,
        description=info.description,
    )


def _walk(root: Entity) -> _Walk:
    walk = _Walk()
    # (entity, in_message, related, alternative group); iterative, depth is bounded anyway.
    stack: list[tuple[Entity, bool, bool, int | None]] = [(root, False, False, None)]
    while stack:
        entity, in_message, related, group = stack.pop()
        if entity.is_multipart:
            subtype = entity.content_type
            child_related = related or subtype == "multipart/related"
            child_group = id(entity) if subtype == "multipart/alternative" else group
            for child in reversed(entity.children):
                stack.append((child, in_message, child_related, child_group))
            continue
        info = _part_info(entity, related=related, in_message=in_message)
        walk.parts.append((entity, info))
        if entity.enclosed is not None:
            if not in_message:
                walk.attachments.append(_attachment(info))
            stack.append((entity.enclosed, True, False, None))
            continue
        if in_message:
            continue
        if _is_body_text(entity):
            walk.body.append(_Leaf(entity, info, group if group is not None else id(entity)))
        else:
            walk.attachments.append(_attachment(info))
    return walk


def leaf_text(entity: Entity) -> str:
    """The decoded text of a text leaf (transfer encoding, charset, format=flowed)."""
    data = decode_body(entity.body, entity.transfer_encoding)
    charset = entity.charset
    if charset is None and entity.content_type == "text/html":
        match = _META_CHARSET.search(data, 0, 4096)
        if match is not None:
            charset = match.group(1).decode("ascii", "replace")
    text = decode_text(data, charset)
    if entity.format_flowed and entity.content_type == "text/plain":
        text = unflow(text, delsp=entity.delsp)
    return text


def _truncate(text: str, max_bytes: int | None) -> tuple[str, bool]:
    if max_bytes is None or len(text) * 4 <= max_bytes:
        return text, False
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text, False
    return encoded[:max_bytes].decode("utf-8", "ignore"), True


def _header_maps(
    fields: list[tuple[str, bytes]], charset: str | None
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    raw: dict[str, list[str]] = {}
    decoded: dict[str, list[str]] = {}
    for name, value in fields:
        text = unfold(decode_header_bytes(value, charset)).strip()
        raw.setdefault(name, []).append(text)
        decoded.setdefault(name, []).append(decode_header_value(text).strip())
    return decoded, raw


def _addresses(raw: dict[str, list[str]], name: str) -> list[Address]:
    out: list[Address] = []
    for value in raw.get(name, []):
        out.extend(parse_addresses(value))
    return out


def _first(raw: dict[str, list[str]], name: str) -> str | None:
    values = raw.get(name)
    return values[0] if values else None


def parse_message(
    raw: bytes, *, max_text_bytes: int | None = None, text_type: str = "*"
) -> ParsedMessage:
    """Parse a raw message. Never raises on bad input: defects go to ``ParsedMessage.defects``.

    ``text_type`` is EmailEngine's ``textType``: ``*`` (plain and HTML), ``plain`` or ``html``.
    ``max_text_bytes`` cuts each text at that many UTF-8 bytes and sets ``has_more``.
    """
    if text_type not in TEXT_TYPES:
        raise ValueError(f"text_type must be one of {TEXT_TYPES}, not {text_type!r}")
    if max_text_bytes is not None and max_text_bytes < 0:
        raise ValueError("max_text_bytes must not be negative")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"raw must be bytes, not {type(raw).__name__}")
    data = bytes(raw)
    defects: list[str] = []
    try:
        return _parse(data, max_text_bytes, text_type, defects)
    except Exception as exc:  # a parser bug must not turn a message into a 500
        defects.append(f"internal error: {type(exc).__name__}: {exc}"[:300])
        return ParsedMessage(headers={}, raw_headers={}, size=len(data), defects=defects)


def _parse(
    raw: bytes, max_text_bytes: int | None, text_type: str, defects: list[str]
) -> ParsedMessage:
    root = parse_tree(raw, defects)
    walk = _walk(root)
    hint = root.charset or next((leaf.entity.charset for leaf in walk.body), None)
    headers, raw_headers = _header_maps(root.fields, hint)

    subject_raw = _first(raw_headers, "subject")
    subject = decode_header_value(subject_raw).strip() if subject_raw is not None else None
    from_list = _addresses(raw_headers, "from")
    msg = ParsedMessage(
        headers=headers,
        raw_headers=raw_headers,
        subject=subject,
        from_=from_list[0] if from_list else None,
        to=_addresses(raw_headers, "to"),
        cc=_addresses(raw_headers, "cc"),
        bcc=_addresses(raw_headers, "bcc"),
        reply_to=_addresses(raw_headers, "reply-to"),
        sender=_addresses(raw_headers, "sender"),
        date=parse_date(_first(raw_headers, "date")),
        message_id=parse_message_id(_first(raw_headers, "message-id")),
        in_reply_to=parse_message_id(_first(raw_headers, "in-reply-to")),
        references=parse_references(" ".join(raw_headers.get("references", []))),
        content_type=root.content_type,
        parts=[info for _, info in walk.parts],
        attachments=walk.attachments,
        size=len(raw),
        defects=defects,
    )
    msg.is_auto_reply = is_auto_reply(headers, subject)
    _fill_text(msg, walk, max_text_bytes, text_type)
    msg.delivery_status = _delivery_status(walk)
    return msg


def _fill_text(msg: ParsedMessage, walk: _Walk, max_text_bytes: int | None, text_type: str) -> None:
    groups: dict[int, tuple[list[str], list[str]]] = {}
    for leaf in walk.body:
        plain, html = groups.setdefault(leaf.group, ([], []))
        text = leaf_text(leaf.entity)
        if leaf.info.content_type == "text/html":
            html.append(text)
            msg.text_html_size += leaf.info.encoded_size
        else:
            plain.append(text)
            msg.text_plain_size += leaf.info.encoded_size
        msg.text_parts.append(leaf.info.part)

    referenced: set[str] = set()
    for _, html in groups.values():
        for chunk in html:
            if "cid:" in chunk.lower():
                referenced |= find_cid_references(chunk)
    for attachment in msg.attachments:
        if attachment.content_id and attachment.content_id.lower() in referenced:
            attachment.embedded = True
            attachment.inline = True

    if not groups:
        return
    has_plain = any(plain for plain, _ in groups.values())
    has_html = any(html for _, html in groups.values())
    cut = False
    if text_type in ("*", "plain"):
        chunks = [
            "\n".join(plain) if plain else html_to_text("\n".join(html))
            for plain, html in groups.values()
        ]
        msg.text_plain, cut_plain = _truncate("\n".join(chunks), max_text_bytes)
        msg.plain_generated = not has_plain
        cut = cut or cut_plain
    if text_type in ("*", "html"):
        chunks = [
            "\n".join(html) if html else text_to_html("\n".join(plain))
            for plain, html in groups.values()
        ]
        msg.text_html, cut_html = _truncate("\n".join(chunks), max_text_bytes)
        msg.html_generated = not has_html
        cut = cut or cut_html
    msg.has_more = cut


def _delivery_status(walk: _Walk) -> list[DeliveryStatus]:
    out: list[DeliveryStatus] = []
    for entity, info in walk.parts:
        if info.in_message or info.content_type not in _DSN_TYPES:
            continue
        out.extend(parse_delivery_status(decode_body(entity.body, entity.transfer_encoding)))
    return out


def decode_part(raw: bytes, part: str) -> tuple[bytes, PartInfo] | None:
    """Transfer-decoded bytes and description of the leaf (or message/rfc822) part ``part`` of
    a whole message in memory; None when there is no such part."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"raw must be bytes, not {type(raw).__name__}")
    defects: list[str] = []
    try:
        root = parse_tree(bytes(raw), defects)
        for entity, info in _walk(root).parts:
            if info.part == part:
                return decode_body(entity.body, entity.transfer_encoding), info
    except Exception:
        return None
    return None


def body_to_text(
    data: bytes,
    *,
    transfer_encoding: str | None,
    charset: str | None,
    content_type: str = "text/plain",
    format_flowed: bool = False,
    delsp: bool = False,
) -> str:
    """Text of a body part fetched alone (e.g. IMAP ``BODY.PEEK[1.2]``), decoded like
    ``parse_message`` decodes body text."""
    entity = Entity(
        buf=data,
        body_start=0,
        end=len(data),
        fields=[],
        depth=0,
        content_type=content_type,
        charset=charset,
        transfer_encoding=transfer_encoding,
        format_flowed=format_flowed,
        delsp=delsp,
    )
    return leaf_text(entity)
