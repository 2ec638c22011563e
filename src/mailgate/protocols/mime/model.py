"""Typed records produced by the MIME parser (msgspec Structs: cheap to build, msgpack-able).

``ParsedMessage.to_contract()`` shows how each attribute maps to EmailEngine's message JSON
(``MessageDetails`` in the OpenAPI contract); the API layer adds what MIME cannot know (``id``,
``uid``, ``path``, flags, labels, ``size``...) and the ids of attachments and of the text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec


class Address(msgspec.Struct, frozen=True):
    """One mailbox: decoded display name (may be empty) and address (may be empty for a
    name-only entry)."""

    name: str
    address: str

    def to_contract(self) -> dict[str, str]:
        """``{name, address}``; ``name`` is left out when empty."""
        out: dict[str, str] = {}
        if self.name:
            out["name"] = self.name
        out["address"] = self.address
        return out


class PartInfo(msgspec.Struct, kw_only=True):
    """A leaf MIME part (or an enclosed message/rfc822 part) with its IMAP part number."""

    part: str
    """IMAP section number: "1", "1.2", "2.1.1" (RFC 3501 section 6.4.5)."""
    content_type: str
    """Lower-case ``type/subtype``; ``text/plain`` when missing or unreadable."""
    charset: str | None = None
    """The declared ``charset`` parameter, lower-case, as written (not normalized)."""
    transfer_encoding: str | None = None
    """Lower-case Content-Transfer-Encoding (``base64``, ``quoted-printable``...), if any."""
    encoded_size: int = 0
    """Bytes of the body as stored in the message (before transfer decoding)."""
    disposition: str | None = None
    """Lower-case Content-Disposition type (``inline``, ``attachment``), if any."""
    filename: str | None = None
    """From ``filename`` (RFC 2231 / RFC 2047 decoded) or the Content-Type ``name``."""
    content_id: str | None = None
    """Content-ID without the angle brackets."""
    description: str | None = None
    method: str | None = None
    """``method`` parameter of text/calendar (upper-case), e.g. ``REQUEST``."""
    format_flowed: bool = False
    delsp: bool = False
    related: bool = False
    """Inside a multipart/related."""
    in_message: bool = False
    """Inside an enclosed message/rfc822 (not part of this message's own body/attachments)."""


class AttachmentInfo(msgspec.Struct, kw_only=True):
    """An attachment of the message itself (not of an enclosed message)."""

    part: str
    content_type: str
    encoded_size: int
    filename: str | None = None
    content_id: str | None = None
    """Without angle brackets (the contract shows them: ``to_contract`` adds them back)."""
    disposition: str | None = None
    inline: bool = False
    """Disposition ``inline``, or an image inside multipart/related, or embedded."""
    embedded: bool = False
    """Referenced from the HTML body by ``cid:``."""
    related: bool = False
    method: str | None = None
    charset: str | None = None
    transfer_encoding: str | None = None
    description: str | None = None

    def to_contract(self, attachment_id: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if attachment_id is not None:
            out["id"] = attachment_id
        out["contentType"] = self.content_type
        out["encodedSize"] = self.encoded_size
        if self.filename is not None:
            out["filename"] = self.filename
        out["embedded"] = self.embedded
        out["inline"] = self.inline
        if self.content_id is not None:
            out["contentId"] = f"<{self.content_id}>"
        if self.method is not None:
            out["method"] = self.method
        return out


class DeliveryStatus(msgspec.Struct, kw_only=True):
    """One per-recipient block of a message/delivery-status part (RFC 3464)."""

    recipient: str | None = None
    action: str | None = None
    status: str | None = None
    diagnostic_code: str | None = None
    remote_mta: str | None = None
    reporting_mta: str | None = None


def iso_date(value: datetime) -> str:
    """EmailEngine's date format: UTC, milliseconds, ``Z`` (``2021-03-22T13:13:31.000Z``)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class ParsedMessage(msgspec.Struct, kw_only=True):
    """A message normalized from its MIME source."""

    headers: dict[str, list[str]]
    """Lower-case name -> values in order, unfolded and RFC 2047 decoded."""
    raw_headers: dict[str, list[str]]
    """Lower-case name -> values in order, unfolded but not decoded (what EmailEngine shows in
    its ``headers`` field, e.g. ``=?UTF-8?Q?...?=`` subjects)."""
    subject: str | None = None
    from_: Address | None = None
    to: list[Address] = msgspec.field(default_factory=list)
    cc: list[Address] = msgspec.field(default_factory=list)
    bcc: list[Address] = msgspec.field(default_factory=list)
    reply_to: list[Address] = msgspec.field(default_factory=list)
    sender: list[Address] = msgspec.field(default_factory=list)
    date: datetime | None = None
    message_id: str | None = None
    """With angle brackets, as EmailEngine shows it."""
    in_reply_to: str | None = None
    references: list[str] = msgspec.field(default_factory=list)
    content_type: str = "text/plain"
    """Lower-case type/subtype of the top-level entity."""
    parts: list[PartInfo] = msgspec.field(default_factory=list)
    attachments: list[AttachmentInfo] = msgspec.field(default_factory=list)
    text_plain: str | None = None
    text_html: str | None = None
    plain_generated: bool = False
    """``text_plain`` was made from HTML (the message has no plain text of its own)."""
    html_generated: bool = False
    """``text_html`` was made from plain text (the message has no HTML of its own)."""
    has_more: bool = False
    """Text was cut at ``max_text_bytes``."""
    text_parts: list[str] = msgspec.field(default_factory=list)
    """Part numbers of the body text parts (plain and HTML), in order."""
    text_plain_size: int = 0
    """Encoded bytes of the plain text parts (``text.encodedSize.plain``)."""
    text_html_size: int = 0
    """Encoded bytes of the HTML parts (``text.encodedSize.html``)."""
    is_auto_reply: bool = False
    delivery_status: list[DeliveryStatus] = msgspec.field(default_factory=list)
    """From message/delivery-status parts (bounces, RFC 3464)."""
    size: int = 0
    """Bytes of the raw message."""
    defects: list[str] = msgspec.field(default_factory=list)

    def to_contract(
        self,
        *,
        attachment_id: Callable[[str], str] | None = None,
        text_id: str | None = None,
        include_text: bool = False,
        headers: str = "raw",
    ) -> dict[str, Any]:
        """The MIME-derived subset of EmailEngine's ``MessageDetails`` JSON.

        ``attachment_id`` maps a part number to an attachment id; ``text_id`` is the text id.
        ``headers`` picks ``raw`` (EmailEngine's behaviour) or ``decoded`` header values.
        """
        out: dict[str, Any] = {}
        if self.date is not None:
            out["date"] = iso_date(self.date)
        if self.subject is not None:
            out["subject"] = self.subject
        if self.from_ is not None:
            out["from"] = self.from_.to_contract()
        if self.sender:
            out["sender"] = self.sender[0].to_contract()
        for key, value in (
            ("to", self.to),
            ("cc", self.cc),
            ("bcc", self.bcc),
            ("replyTo", self.reply_to),
        ):
            if value:
                out[key] = [a.to_contract() for a in value]
        if self.message_id is not None:
            out["messageId"] = self.message_id
        if self.in_reply_to is not None:
            out["inReplyTo"] = self.in_reply_to
        out["headers"] = self.raw_headers if headers == "raw" else self.headers
        out["attachments"] = [
            a.to_contract(attachment_id(a.part) if attachment_id else None)
            for a in self.attachments
        ]
        text: dict[str, Any] = {}
        if text_id is not None:
            text["id"] = text_id
        encoded: dict[str, int] = {}
        if self.text_plain_size or "text/plain" in self._text_types():
            encoded["plain"] = self.text_plain_size
        if self.text_html_size or "text/html" in self._text_types():
            encoded["html"] = self.text_html_size
        text["encodedSize"] = encoded
        if include_text:
            if self.text_plain is not None:
                text["plain"] = self.text_plain
            if self.text_html is not None:
                text["html"] = self.text_html
            text["hasMore"] = self.has_more
        out["text"] = text
        out["isAutoReply"] = self.is_auto_reply
        return out

    def _text_types(self) -> set[str]:
        numbers = set(self.text_parts)
        return {p.content_type for p in self.parts if p.part in numbers}
