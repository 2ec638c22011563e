"""The RFC 822 message of an upload (``POST /message``), built with the stdlib ``email`` package.

From ``raw`` (base64): the bytes are stored unchanged, unless other fields are given alongside,
which then replace the matching headers (EmailEngine's rule). From fields: ``from``, ``to``,
``cc``, ``bcc``, ``subject``, ``text``, ``html``, ``attachments`` (``cid`` ones go into a
multipart/related next to the HTML), ``messageId`` (made up when missing) and custom ``headers``.
Errors are :class:`mailgate.errors.BadRequest` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid

from mailgate.errors import BadRequest
from mailgate.services.message_inputs import AddressIn, MessageUploadIn, UploadAttachmentIn

#: Headers the structured fields own: custom ``headers`` may not set these.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-transfer-encoding", "mime-version", "content-disposition"}
)
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]{1,76}")
_CRLF = policy.default.clone(linesep="\r\n")


def _b64(value: str, key: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f'"{key}" must be valid base64', key=key) from None


def _address(item: AddressIn, key: str) -> Address:
    try:
        return Address(display_name=item.name or "", addr_spec=item.address)
    except (ValueError, IndexError) as exc:
        raise BadRequest(f'"{key}" has an invalid address: {item.address[:80]}', key=key) from exc


def _set(msg: EmailMessage, name: str, value: object) -> None:
    del msg[name]
    if value is not None:
        msg[name] = value


def _apply_headers(msg: EmailMessage, body: MessageUploadIn, *, fresh: bool) -> None:
    if body.from_ is not None:
        _set(msg, "From", _address(body.from_, "from"))
    for key, name in (("to", "To"), ("cc", "Cc"), ("bcc", "Bcc")):
        items: list[AddressIn] | None = getattr(body, key)
        if items:
            _set(msg, name, [_address(a, key) for a in items])
    if body.subject is not None:
        _set(msg, "Subject", body.subject)
    if body.messageId is not None:
        mid = body.messageId.strip()
        _set(msg, "Message-ID", mid if mid.startswith("<") else f"<{mid}>")
    elif fresh:
        domain = body.from_.address.rpartition("@")[2] if body.from_ else None
        msg["Message-ID"] = make_msgid(domain=domain or "mailgate.local")
    if fresh and "Date" not in msg:
        msg["Date"] = format_datetime(datetime.now(UTC))
    for name, value in (body.headers or {}).items():
        if not _FIELD_NAME.fullmatch(name) or name.lower() in RESERVED_HEADERS:
            raise BadRequest(f'"headers" has an invalid header name: {name[:80]}', key="headers")
        if "\r" in value or "\n" in value:
            raise BadRequest(f'"headers.{name}" must be one line', key="headers")
        _set(msg, name, value)


def _content_type(att: UploadAttachmentIn) -> tuple[str, str]:
    maintype, _, subtype = (att.contentType or "application/octet-stream").partition("/")
    if not maintype or not subtype:
        return "application", "octet-stream"
    return maintype, subtype


def _attach(msg: EmailMessage, atts: list[UploadAttachmentIn], index_base: int = 0) -> None:
    for index, att in enumerate(atts, index_base):
        if att.content is None:
            raise BadRequest(
                f'"attachments[{index}].content" is required', key=f"attachments.{index}"
            )
        data = _b64(att.content, f"attachments.{index}.content")
        maintype, subtype = _content_type(att)
        msg.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype,
            filename=att.filename,
            disposition=att.contentDisposition or "attachment",
            cid=f"<{att.cid.strip('<>')}>" if att.cid else None,
        )


def _html_part(msg: EmailMessage) -> EmailMessage | None:
    for part in msg.walk():
        if isinstance(part, EmailMessage) and part.get_content_type() == "text/html":
            return part
    return None


def _from_fields(body: MessageUploadIn) -> EmailMessage:
    msg = EmailMessage(policy=policy.default)
    _apply_headers(msg, body, fresh=True)
    if body.text is not None:
        msg.set_content(body.text)
    if body.html is not None:
        if body.text is not None:
            msg.add_alternative(body.html, subtype="html")
        else:
            msg.set_content(body.html, subtype="html")
    if body.text is None and body.html is None:
        msg.set_content("")
    atts = body.attachments or []
    related = [a for a in atts if a.cid and body.html is not None]
    others = [a for a in atts if a not in related]
    html = _html_part(msg)
    for index, att in enumerate(related):
        if html is None or att.content is None:
            others.append(att)
            continue
        maintype, subtype = _content_type(att)
        html.add_related(
            _b64(att.content, f"attachments.{index}.content"),
            maintype=maintype,
            subtype=subtype,
            cid=f"<{(att.cid or '').strip('<>')}>",
            filename=att.filename,
            disposition=att.contentDisposition or "inline",
        )
    if others:
        _attach(msg, others)
    return msg


def _message_id(raw: bytes) -> str | None:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    parsed = BytesParser(policy=policy.default).parsebytes(head + b"\r\n\r\n", headersonly=True)
    value = parsed.get("Message-ID")
    return str(value).strip() if value else None


def build_upload(body: MessageUploadIn) -> tuple[bytes, str | None]:
    """``(RFC 822 bytes with CRLF line ends, Message-ID)`` of an upload request."""
    overrides = any(
        v is not None
        for v in (
            body.from_,
            body.to,
            body.cc,
            body.bcc,
            body.subject,
            body.messageId,
            body.headers,
        )
    )
    if body.raw is not None:
        raw = _b64(body.raw, "raw")
        if not raw.strip():
            raise BadRequest('"raw" is an empty message', key="raw")
        if overrides:
            parsed = BytesParser(policy=policy.default).parsebytes(raw)
            if not isinstance(parsed, EmailMessage):  # pragma: no cover - policy.default
                raise BadRequest('"raw" is not a message', key="raw")
            _apply_headers(parsed, body, fresh=False)
            raw = parsed.as_bytes(policy=_CRLF)
        return raw, _message_id(raw)
    msg = _from_fields(body)
    raw = msg.as_bytes(policy=_CRLF)
    return raw, _message_id(raw)


def parse_internal_date(value: str | None) -> datetime | None:
    """``internalDate`` (ISO 8601) → aware datetime; BadRequest when unreadable."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest('"internalDate" must be an ISO 8601 date', key="internalDate") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
