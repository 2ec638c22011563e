"""MIME -> normalized message: a pure, bounded, never-raising parser (no I/O, no asyncio).

Modules, one concept each::

    limits      every bound the parser applies
    model       ParsedMessage, PartInfo, AttachmentInfo, Address (+ to_contract() field mapping)
    charsets    charset labels and bytes -> str with fallbacks
    headers     RFC 2047 words, Content-Type/-Disposition parameters, dates, message ids
    addresses   address lists
    structure   the MIME tree with byte offsets and IMAP part numbers
    transfer    base64 / quoted-printable / uuencode, format=flowed
    html        sanitize (nh3), html -> text (inscriptis), text -> html, cid: images
    classify    auto-replies, delivery status notifications
    parse       parse_message, decode_part, body_to_text

Errors: only programmer errors raise (``TypeError`` for a non-bytes message, ``ValueError`` for a
bad ``text_type``); anything wrong with a message is a string in ``ParsedMessage.defects``.
"""

from __future__ import annotations

from .addresses import parse_addresses
from .charsets import decode_text, normalize_charset
from .classify import is_auto_reply, parse_delivery_status
from .headers import decode_header_value, parse_date
from .html import (
    embed_cid_images,
    find_cid_references,
    html_to_text,
    sanitize_html,
    text_to_html,
)
from .model import (
    Address,
    AttachmentInfo,
    DeliveryStatus,
    ParsedMessage,
    PartInfo,
    iso_date,
)
from .parse import body_to_text, decode_part, parse_message
from .transfer import decode_body, unflow

__all__ = [
    "Address",
    "AttachmentInfo",
    "DeliveryStatus",
    "ParsedMessage",
    "PartInfo",
    "body_to_text",
    "decode_body",
    "decode_header_value",
    "decode_part",
    "decode_text",
    "embed_cid_images",
    "find_cid_references",
    "html_to_text",
    "is_auto_reply",
    "iso_date",
    "normalize_charset",
    "parse_addresses",
    "parse_date",
    "parse_delivery_status",
    "parse_message",
    "sanitize_html",
    "text_to_html",
    "unflow",
]
