"""Building RFC 5322 messages with the stdlib ``email`` package (pure: no I/O).

``build_message`` turns a :class:`Draft` (addresses, subject, text, HTML, attachments, custom
headers, threading headers) into wire bytes::

    text only            text/plain
    html only            text/html
    text + html          multipart/alternative (text/plain, text/html)
    + cid attachments    the text/html part becomes multipart/related (html, images)
    + other attachments  multipart/mixed (body, attachments...)

``prepare_raw`` takes a ready RFC 822 message (``raw`` on submit, a stored draft) and makes it
sendable the same way: CRLF line ends, a Message-ID and Date when missing, Bcc removed from what
is transmitted. Both return a :class:`BuiltMessage` with the SMTP envelope derived from the
headers (or the caller's override). Every problem with the input is a :class:`BadRequest`.
"""

from __future__ import annotations

import email.utils
import mimetypes
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from mailgate.backends.smtp.sender import Envelope
from mailgate.errors import BadRequest
from mailgate.protocols.mime import decode_header_value, parse_addresses

MAX_MESSAGE_SIZE = 25 * 1024 * 1024  # bytes of one built message (before SMTP dot-stuffing)
MAX_REFERENCES = 50  # message ids kept in References (oldest dropped first, the root kept)
MAX_HEADER_LINE = 998  # RFC 5322 line limit for header values we keep unfolded

POLICY = SMTP.clone(max_line_length=78)
STRUCTURAL_HEADERS = frozenset({"content-type", "content-transfer-encoding", "mime-version"})
_FIELD_NAME = re.compile(r"[!-9;-~]{1,200}")
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")


@dataclass(frozen=True)
class Addr:
    address: str
    name: str = ""


@dataclass(frozen=True)
class Attachment:
    content: bytes
    filename: str | None = None
    content_type: str | None = None
    disposition: str | None = None  # "inline" or "attachment"
    cid: str | None = None


@dataclass
class Draft:
    from_: Addr
    to: list[Addr] = field(default_factory=list)
    cc: list[Addr] = field(default_factory=list)
    bcc: list[Addr] = field(default_factory=list)
    reply_to: list[Addr] = field(default_factory=list)
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    preview_text: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuiltMessage:
    raw: bytes  # what is transmitted (no Bcc header)
    message_id: str
    envelope: Envelope
    subject: str | None
    bcc: tuple[str, ...] = ()  # for the Sent copy


def validate_address(value: str, what: str = "address") -> str:
    """A plain ``local@domain`` address, trimmed; BadRequest otherwise."""
    addr = (value or "").strip()
    if not addr or len(addr) > 320 or not _ADDRESS.fullmatch(addr) or not addr.isprintable():
        raise BadRequest(f'Invalid email {what} "{value[:100]}"', "InvalidAddress")
    local, _, domain = addr.rpartition("@")
    if not local or not domain or domain.startswith(".") or domain.endswith(".") or ".." in domain:
        raise BadRequest(f'Invalid email {what} "{value[:100]}"', "InvalidAddress")
    return addr


def _check_text(value: str | None, what: str) -> None:
    if value is not None and ("\r" in value or "\n" in value or "\x00" in value):
        raise BadRequest(f"{what} must not contain line breaks", "InputValidationError")


def domain_of(address: str | None, fallback: str = "localhost") -> str:
    if address and "@" in address:
        domain = address.rpartition("@")[2].strip().strip(">").lower()
        if domain:
            return domain
    return fallback


def new_message_id(domain: str) -> str:
    return f"<{uuid.uuid4()}@{domain}>"


def normalize_message_id(value: str) -> str:
    value = value.strip()
    _check_text(value, "messageId")
    if not value:
        raise BadRequest("messageId must not be empty")
    if not value.startswith("<"):
        value = "<" + value
    if not value.endswith(">"):
        value += ">"
    if " " in value or len(value) > MAX_HEADER_LINE - 20:
        raise BadRequest("Invalid messageId", "InputValidationError")
    return value


def _header_address(a: Addr) -> Address:
    _check_text(a.name, "Address name")
    local, _, domain = a.address.rpartition("@")
    try:
        return Address(display_name=a.name or "", username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise BadRequest(f'Invalid email address "{a.address[:100]}"', "InvalidAddress") from exc


def _unique(addresses: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for addr in addresses:
        seen.setdefault(addr.lower(), addr)
    return tuple(seen.values())


def make_envelope(
    from_: str, recipients: Iterable[str], override: Envelope | None = None
) -> Envelope:
    """The SMTP envelope: the override's fields where given, else from the headers."""
    mail_from = override.mail_from if override and override.mail_from else from_
    rcpt = override.rcpt_to if override and override.rcpt_to else _unique(recipients)
    if not rcpt:
        raise BadRequest("No recipients: give to, cc, bcc or envelope.to", "EnvelopeNoRecipients")
    return Envelope(mail_from=mail_from, rcpt_to=tuple(rcpt))


def limit_references(refs: Sequence[str]) -> list[str]:
    """At most MAX_REFERENCES ids: the first (thread root) and the most recent ones."""
    unique = list(dict.fromkeys(r for r in refs if r))
    if len(unique) <= MAX_REFERENCES:
        return unique
    return [unique[0], *unique[-(MAX_REFERENCES - 1) :]]


def _cte(text: str) -> str:
    ok = text.isascii() and all(len(line) <= 900 for line in text.splitlines())
    return "7bit" if ok else "quoted-printable"


def _with_preview(html: str, preview: str) -> str:
    hidden = (
        '<div style="display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;'
        'opacity:0;overflow:hidden">' + _escape(preview) + "</div>"
    )
    match = re.search(r"<body[^>]*>", html, re.IGNORECASE)
    if match:
        return html[: match.end()] + hidden + html[match.end() :]
    return hidden + html


def _escape(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _split_type(att: Attachment) -> tuple[str, str]:
    ctype = att.content_type
    if not ctype and att.filename:
        ctype = mimetypes.guess_type(att.filename)[0]
    ctype = (ctype or "application/octet-stream").lower()
    maintype, _, subtype = ctype.partition("/")
    if not maintype or not subtype or not re.fullmatch(r"[a-z0-9!#$&^_.+-]+", maintype + subtype):
        raise BadRequest(f'Invalid attachment contentType "{ctype[:100]}"')
    return maintype, subtype


def _attach(
    target: EmailMessage, att: Attachment, *, related: bool, disposition: str | None
) -> None:
    maintype, subtype = _split_type(att)
    _check_text(att.filename, "Attachment filename")
    kwargs: dict[str, Any] = {"maintype": maintype, "subtype": subtype}
    if att.filename:
        kwargs["filename"] = att.filename
    if att.cid:
        _check_text(att.cid, "Attachment cid")
        kwargs["cid"] = "<" + att.cid.strip().strip("<>") + ">"
    if disposition:
        kwargs["disposition"] = disposition
    if related:
        target.add_related(att.content, **kwargs)
    else:
        target.add_attachment(att.content, **kwargs)


def _drop_inner_mime_version(msg: EmailMessage) -> None:
    for part in msg.walk():
        if part is not msg and "MIME-Version" in part:
            del part["MIME-Version"]


def build_message(
    draft: Draft,
    *,
    domain: str,
    now: datetime | None = None,
    envelope: Envelope | None = None,
) -> BuiltMessage:
    """RFC 5322 bytes (CRLF, folded headers, 7bit-safe bodies) for ``draft``."""
    for name, value in [("subject", draft.subject), ("previewText", draft.preview_text)]:
        _check_text(value, name)
    msg = EmailMessage(policy=POLICY)
    msg["From"] = _header_address(draft.from_)
    for header, addrs in (("Reply-To", draft.reply_to), ("To", draft.to), ("Cc", draft.cc)):
        if addrs:
            msg[header] = [_header_address(a) for a in addrs]
    if draft.subject is not None:
        msg["Subject"] = draft.subject
    message_id = (
        normalize_message_id(draft.message_id) if draft.message_id else new_message_id(domain)
    )
    msg["Message-ID"] = message_id
    msg["Date"] = email.utils.format_datetime(now or datetime.now(UTC))
    if draft.in_reply_to:
        msg["In-Reply-To"] = normalize_message_id(draft.in_reply_to)
    if draft.references:
        msg["References"] = " ".join(
            normalize_message_id(r) for r in limit_references(draft.references)
        )
    _set_custom_headers(msg, draft.headers)

    html = draft.html
    if html is not None and draft.preview_text:
        html = _with_preview(html, draft.preview_text)
    if draft.text is not None or html is None:
        text = draft.text or ""
        msg.set_content(text, cte=_cte(text))
        if html is not None:
            msg.add_alternative(html, subtype="html", cte=_cte(html))
    else:
        msg.set_content(html, subtype="html", cte=_cte(html))

    html_part = msg.get_body(("html",)) if html is not None else None
    for att in draft.attachments:
        embedded = (
            html_part is not None
            and att.cid is not None
            and att.disposition != "attachment"
            and html is not None
            and ("cid:" + att.cid.strip().strip("<>")) in html
        )
        if embedded and isinstance(html_part, EmailMessage):
            _attach(html_part, att, related=True, disposition="inline")
            html_part = _related_html(msg) or html_part
        else:
            _attach(msg, att, related=False, disposition=att.disposition or "attachment")
    _drop_inner_mime_version(msg)
    raw = msg.as_bytes(policy=POLICY)
    check_size(raw)
    recipients = [a.address for a in (*draft.to, *draft.cc, *draft.bcc)]
    return BuiltMessage(
        raw=raw,
        message_id=message_id,
        envelope=make_envelope(draft.from_.address, recipients, envelope),
        subject=draft.subject,
        bcc=tuple(a.address for a in draft.bcc),
    )


def _related_html(msg: EmailMessage) -> EmailMessage | None:
    """The multipart/related holding the HTML body (after the first add_related)."""
    for part in msg.walk():
        if part.get_content_type() == "multipart/related" and isinstance(part, EmailMessage):
            return part
    return None


def _set_custom_headers(msg: EmailMessage, headers: dict[str, str]) -> None:
    for key, value in headers.items():
        if not _FIELD_NAME.fullmatch(key):
            raise BadRequest(f'Invalid header name "{key[:100]}"', "InputValidationError")
        if key.lower() in STRUCTURAL_HEADERS:
            raise BadRequest(f'Header "{key}" is set by mailgate', "InputValidationError")
        _check_text(value, f'Header "{key}"')
        if key in msg:
            del msg[key]
        try:
            msg[key] = value
        except (ValueError, TypeError) as exc:
            raise BadRequest(f'Invalid value for header "{key}": {exc}') from exc


def check_size(raw: bytes) -> None:
    if len(raw) > MAX_MESSAGE_SIZE:
        raise BadRequest(
            f"Message is too large ({len(raw)} bytes, at most {MAX_MESSAGE_SIZE})",
            "MessageTooLarge",
        )


# -- ready messages (raw, drafts) ------------------------------------------------------------


def split_message(raw: bytes) -> tuple[list[bytes], bytes]:
    """CRLF-normalized header fields (each with its folded continuation lines) and the body."""
    data = re.sub(rb"\r?\n", b"\r\n", raw)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, body = (data, b"") if b":" in data.split(b"\r\n", 1)[0] else (b"", data)
    fields: list[bytes] = []
    for line in head.split(b"\r\n") if head else []:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields, body


def _field_name(f: bytes) -> str:
    return f.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def _field_value(f: bytes) -> str:
    value = f.split(b":", 1)[1] if b":" in f else b""
    return re.sub(rb"\r\n[ \t]+", b" ", value).strip().decode("utf-8", "replace")


def header_values(fields: Sequence[bytes], name: str) -> list[str]:
    return [_field_value(f) for f in fields if _field_name(f) == name]


def prepare_raw(
    raw: bytes,
    *,
    domain: str,
    now: datetime | None = None,
    envelope: Envelope | None = None,
    fallback_from: str | None = None,
) -> BuiltMessage:
    """A ready RFC 822 message made sendable: CRLF, Message-ID and Date added when missing, Bcc
    removed from the transmitted copy; the envelope from From/To/Cc/Bcc unless overridden."""
    fields, body = split_message(raw)
    if not fields:
        raise BadRequest("The raw message has no header", "InvalidRawMessage")
    added: list[bytes] = []
    ids = header_values(fields, "message-id")
    message_id = ids[0] if ids and ids[0] else new_message_id(domain)
    if not ids:
        added.append(b"Message-ID: " + message_id.encode())
    if not header_values(fields, "date"):
        stamp = email.utils.format_datetime(now or datetime.now(UTC))
        added.append(b"Date: " + stamp.encode())
    bcc = [a.address for v in header_values(fields, "bcc") for a in parse_addresses(v)]
    kept = [f for f in fields if _field_name(f) != "bcc"]
    data = b"\r\n".join([*kept, *added]) + b"\r\n\r\n" + body
    check_size(data)
    froms = [a.address for v in header_values(fields, "from") for a in parse_addresses(v)]
    mail_from = froms[0] if froms and froms[0] else (fallback_from or "")
    recipients = [
        a.address
        for name in ("to", "cc")
        for v in header_values(fields, name)
        for a in parse_addresses(v)
        if a.address
    ] + [b for b in bcc if b]
    subjects = header_values(fields, "subject")
    return BuiltMessage(
        raw=data,
        message_id=normalize_message_id(message_id),
        envelope=make_envelope(mail_from, recipients, envelope),
        subject=email_subject(subjects[0]) if subjects else None,
        bcc=tuple(b for b in bcc if b),
    )


def email_subject(value: str) -> str:
    return decode_header_value(value)


def with_bcc(raw: bytes, bcc: Sequence[str]) -> bytes:
    """``raw`` with a Bcc header in front (the Sent copy keeps who was blind-copied)."""
    if not bcc:
        return raw
    msg = EmailMessage(policy=POLICY)
    msg["Bcc"] = ", ".join(bcc)
    line = msg.as_bytes(policy=POLICY).split(b"\r\n\r\n", 1)[0]
    return line + b"\r\n" + raw
