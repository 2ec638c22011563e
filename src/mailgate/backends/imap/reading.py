"""Message details and body text from IMAP FETCH data (pure: no I/O).

``GET /message`` costs one ``UID FETCH``: the summary items plus ``BODY.PEEK[]<0.N>`` with
N = :data:`WHOLE_MESSAGE_LIMIT`. A message that fits is parsed whole (:func:`details_from_raw`).
A larger one is answered from its BODYSTRUCTURE, its header and its text parts fetched one by one
(:func:`large_message_items`, then :func:`details_from_parts`): its attachments are never
downloaded.
"""

from __future__ import annotations

from typing import Any

from mailgate.backends.base import ReadOptions
from mailgate.backends.imap.summary import text_parts
from mailgate.domain.ids import pack_attachment_id, pack_text_id
from mailgate.protocols.imap import BodyStructure, FetchResponse
from mailgate.protocols.mime import (
    ParsedMessage,
    body_to_text,
    decode_part,
    embed_cid_images,
    find_cid_references,
    html_to_text,
    parse_message,
    sanitize_html,
    text_to_html,
)

#: Messages up to this size are fetched whole and parsed in memory.
WHOLE_MESSAGE_LIMIT = 2 * 1024 * 1024
#: Most bytes of one text part fetched for a large message or a text id.
MAX_TEXT_PART_BYTES = 8 * 1024 * 1024
#: Most bytes of images embedded into HTML as data: URIs (embedAttachedImages).
MAX_EMBED_BYTES = 8 * 1024 * 1024
#: Most text parts one answer fetches.
MAX_TEXT_PARTS = 16

TEXT_TYPES = ("*", "plain", "html")
WHOLE_ITEM = f"BODY.PEEK[]<0.{WHOLE_MESSAGE_LIMIT}>"


def effective_options(options: ReadOptions) -> ReadOptions:
    """``webSafeHtml`` is a shorthand for all text, embedded images and sanitized HTML."""
    if not options.web_safe_html:
        return options
    return ReadOptions(
        text_type=options.text_type or "*",
        max_bytes=options.max_bytes,
        web_safe_html=True,
        embed_attached_images=True,
        pre_process_html=True,
        mark_as_seen=options.mark_as_seen,
    )


def find_part(root: BodyStructure, part: str) -> BodyStructure | None:
    for node in root.walk():
        if node.part == part:
            return node
    return None


def _finish_html(html: str, options: ReadOptions, images: dict[str, tuple[str, bytes]]) -> str:
    if options.web_safe_html:
        return sanitize_html(html, embed_images=images or None)
    if images:
        return embed_cid_images(html, images)
    return html


def _text_block(
    text: dict[str, Any],
    plain: str | None,
    html: str | None,
    has_more: bool,
    options: ReadOptions,
    images: dict[str, tuple[str, bytes]],
) -> None:
    if plain is not None and options.text_type in ("*", "plain"):
        text["plain"] = plain
    if html is not None and options.text_type in ("*", "html"):
        text["html"] = _finish_html(html, options, images)
    text["hasMore"] = has_more
    if options.web_safe_html:
        text["webSafe"] = True


def _cid_images_from_raw(raw: bytes, parsed: ParsedMessage) -> dict[str, tuple[str, bytes]]:
    images: dict[str, tuple[str, bytes]] = {}
    budget = MAX_EMBED_BYTES
    for att in parsed.attachments:
        if not att.content_id or not att.content_type.startswith("image/"):
            continue
        decoded = decode_part(raw, att.part)
        if decoded is None or len(decoded[0]) > budget:
            continue
        budget -= len(decoded[0])
        images[att.content_id] = (att.content_type, decoded[0])
    return images


def merge_details(summary: dict[str, Any], mime: dict[str, Any]) -> dict[str, Any]:
    """The summary (ids, flags, size, internal date...) completed by the MIME fields."""
    out = dict(summary)
    for key, value in mime.items():
        if key == "date" and out.get("date"):
            continue  # the listing shows the internal date; keep both answers the same
        out[key] = value
    return out


def details_from_raw(
    summary: dict[str, Any],
    raw: bytes,
    mailbox_no: int,
    uid: int,
    options: ReadOptions,
) -> dict[str, Any]:
    """Details of a message fetched whole."""
    parsed = parse_message(
        raw, max_text_bytes=options.max_bytes, text_type=options.text_type or "*"
    )
    text_id = pack_text_id(mailbox_no, uid, parsed.text_parts) if parsed.text_parts else None
    mime = parsed.to_contract(
        attachment_id=lambda part: pack_attachment_id(mailbox_no, uid, part),
        text_id=text_id,
        include_text=False,
    )
    text: dict[str, Any] = mime["text"]
    if options.text_type is not None:
        wants_html = options.text_type in ("*", "html") and parsed.text_html is not None
        images = (
            _cid_images_from_raw(raw, parsed)
            if options.embed_attached_images and wants_html
            else {}
        )
        _text_block(text, parsed.text_plain, parsed.text_html, parsed.has_more, options, images)
    if not text.get("id") and not text.get("encodedSize") and options.text_type is None:
        mime.pop("text")
    return merge_details(summary, mime)


def large_message_items(root: BodyStructure) -> list[str]:
    """FETCH items for the header and the text parts of a message too large to fetch whole."""
    items = ["BODY.PEEK[HEADER]"]
    for part in list(text_parts(root).values())[:MAX_TEXT_PARTS]:
        items.append(f"BODY.PEEK[{part.part}]<0.{MAX_TEXT_PART_BYTES}>")
    return items


def part_text(part: BodyStructure, data: bytes) -> str:
    return body_to_text(
        data,
        transfer_encoding=part.encoding,
        charset=part.params.get("charset"),
        content_type=part.content_type,
        format_flowed=part.params.get("format", "").lower() == "flowed",
        delsp=part.params.get("delsp", "").lower() == "yes",
    )


def _truncate(text: str, max_bytes: int | None) -> tuple[str, bool]:
    if max_bytes is None:
        return text, False
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text, False
    return encoded[:max_bytes].decode("utf-8", "ignore"), True


def compose_text(
    parts: list[tuple[BodyStructure, bytes]], *, text_type: str, max_bytes: int | None
) -> tuple[str | None, str | None, bool]:
    """(plain, html, hasMore) from text parts fetched alone: HTML is turned into plain text
    when there is no plain part, and the other way round, as the MIME parser does."""
    plain = [part_text(p, d) for p, d in parts if p.subtype != "html"]
    html = [part_text(p, d) for p, d in parts if p.subtype == "html"]
    cut = any(len(d) >= MAX_TEXT_PART_BYTES for _, d in parts)
    out_plain = out_html = None
    if text_type in ("*", "plain") and (plain or html):
        out_plain, more = _truncate("\n".join(plain) or html_to_text("\n".join(html)), max_bytes)
        cut = cut or more
    if text_type in ("*", "html") and (plain or html):
        out_html, more = _truncate("\n".join(html) or text_to_html("\n".join(plain)), max_bytes)
        cut = cut or more
    return out_plain, out_html, cut


def details_from_parts(
    summary: dict[str, Any],
    fetched: FetchResponse,
    root: BodyStructure,
    options: ReadOptions,
) -> dict[str, Any]:
    """Details of a large message from its header and text parts (attachments from the
    BODYSTRUCTURE, as in the listing)."""
    header = fetched.section("HEADER") or b""
    parsed = parse_message(header if header.endswith(b"\r\n\r\n") else header + b"\r\n")
    mime = parsed.to_contract(include_text=False)
    mime.pop("attachments", None)
    mime.pop("text", None)
    out = merge_details(summary, mime)
    if options.text_type is None:
        return out
    texts = list(text_parts(root).values())[:MAX_TEXT_PARTS]
    parts = [(p, fetched.section(p.part) or b"") for p in texts]
    plain, html, more = compose_text(
        parts, text_type=options.text_type, max_bytes=options.max_bytes
    )
    text = dict(out.get("text") or {})
    _text_block(text, plain, html, more, options, {})
    out["text"] = text
    if html and any(a.get("contentId") for a in out.get("attachments", [])):
        referenced = find_cid_references(html)
        for att in out["attachments"]:
            cid = str(att.get("contentId", "")).strip("<>").lower()
            if cid and cid in referenced:
                att["embedded"] = att["inline"] = True
    return out
