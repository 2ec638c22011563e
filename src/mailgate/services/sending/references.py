"""Replies and forwards: threading headers, subjects, recipients and quoting (pure).

Given the referenced message's headers (:class:`Original`), these functions decide what the new
message gets:

- ``In-Reply-To`` (replies) and ``References`` (replies and forwards): the original's References
  (or its In-Reply-To when it has none) followed by its Message-ID, without duplicates;
- the subject: ``Re: `` / ``Fwd: `` added once (existing ``Re:``, ``RE:``, ``Aw:``, ``Fwd:``,
  ``Fw:`` prefixes are recognised);
- recipients when the request gives none: reply → the original's Reply-To, else From;
  reply-all → that plus the original's To and Cc, minus the account's own addresses;
- quoted text/HTML for ``inline: true``.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailgate.protocols.mime import Address, parse_message

from .builder import Addr

HEADER_FIELDS = (
    "MESSAGE-ID",
    "REFERENCES",
    "IN-REPLY-TO",
    "SUBJECT",
    "FROM",
    "TO",
    "CC",
    "REPLY-TO",
    "DATE",
)
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|vs|odp)\s*(\[\d+\])?\s*:", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(fwd?|fw|wg|tr|rv)\s*:", re.IGNORECASE)


@dataclass
class Original:
    """What a reply or forward needs from the referenced message."""

    message_id: str | None = None
    references: list[str] = field(default_factory=list)
    in_reply_to: str | None = None
    subject: str | None = None
    from_: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    date: str | None = None
    text: str | None = None
    html: str | None = None


def parse_original(header_or_message: bytes) -> Original:
    """:class:`Original` from the raw header block (or the whole message, for text too)."""
    data = header_or_message
    if b"\r\n\r\n" not in data and b"\n\n" not in data:
        data += b"\r\n"
    parsed = parse_message(data)
    dates = parsed.headers.get("date") or []
    return Original(
        message_id=parsed.message_id,
        references=list(parsed.references),
        in_reply_to=parsed.in_reply_to,
        subject=parsed.subject,
        from_=parsed.from_,
        to=list(parsed.to),
        cc=list(parsed.cc),
        reply_to=list(parsed.reply_to),
        date=dates[0] if dates else None,
        text=None if parsed.plain_generated else parsed.text_plain,
        html=None if parsed.html_generated else parsed.text_html,
    )


def prefixed_subject(subject: str | None, action: str) -> str:
    """``Re: subject`` / ``Fwd: subject`` with the prefix added only once."""
    base = (subject or "").strip()
    if action == "forward":
        return base if _FORWARD_PREFIX.match(base) else f"Fwd: {base}".rstrip()
    return base if _REPLY_PREFIX.match(base) else f"Re: {base}".rstrip()


def thread_headers(original: Original, action: str) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) for a message answering or forwarding ``original``."""
    refs = list(original.references)
    if not refs and original.in_reply_to:
        refs = [original.in_reply_to]
    if original.message_id:
        refs.append(original.message_id)
    refs = list(dict.fromkeys(r for r in refs if r))
    in_reply_to = original.message_id if action in ("reply", "reply-all") else None
    return in_reply_to, refs


def _addr(a: Address) -> Addr:
    return Addr(address=a.address, name=a.name)


def reply_recipients(
    original: Original, action: str, own: Iterable[str]
) -> tuple[list[Addr], list[Addr]]:
    """(to, cc) derived from the original for a reply or reply-all."""
    mine = {o.lower() for o in own if o}
    primary = original.reply_to or ([original.from_] if original.from_ else [])
    to = [_addr(a) for a in primary if a.address]
    cc: list[Addr] = []
    if action == "reply-all":
        seen = {a.address.lower() for a in to}
        for a in [*original.to, *original.cc]:
            key = a.address.lower()
            if not a.address or key in mine or key in seen:
                continue
            seen.add(key)
            cc.append(_addr(a))
    # replying to one's own message goes to its recipients instead of back to oneself
    if to and all(a.address.lower() in mine for a in to):
        others = [_addr(a) for a in original.to if a.address.lower() not in mine]
        if others:
            to = others
            cc = [c for c in cc if c.address.lower() not in {o.address.lower() for o in to}]
    return to, cc


def _who(original: Original) -> str:
    if original.from_ is None:
        return "someone"
    if original.from_.name:
        return f"{original.from_.name} <{original.from_.address}>"
    return original.from_.address


def quote_text(original: Original) -> str:
    """The original's text as a ``>`` quote with an attribution line."""
    lead = (
        f"On {original.date}, {_who(original)} wrote:"
        if original.date
        else f"{_who(original)} wrote:"
    )
    body = original.text or ""
    quoted = "\n".join("> " + line if line else ">" for line in body.splitlines())
    return f"{lead}\n{quoted}"


def quote_html(original: Original) -> str:
    """The original's HTML (or escaped text) inside a blockquote with an attribution line."""
    lead = html_lib.escape(
        f"On {original.date}, {_who(original)} wrote:"
        if original.date
        else f"{_who(original)} wrote:"
    )
    if original.html:
        inner = original.html
        match = re.search(r"<body[^>]*>(.*)</body>", inner, re.IGNORECASE | re.DOTALL)
        if match:
            inner = match.group(1)
    else:
        inner = "<br>\n".join(html_lib.escape(line) for line in (original.text or "").splitlines())
    return (
        f"<p>{lead}</p>\n"
        '<blockquote type="cite" style="margin:0 0 0 .8ex;border-left:1px solid #ccc;'
        f'padding-left:1ex">{inner}</blockquote>'
    )


def forwarded_header_text(original: Original) -> str:
    """The "Forwarded message" block put above an inline forward."""
    lines = ["---------- Forwarded message ---------", f"From: {_who(original)}"]
    if original.date:
        lines.append(f"Date: {original.date}")
    if original.subject:
        lines.append(f"Subject: {original.subject}")
    if original.to:
        lines.append("To: " + ", ".join(a.address for a in original.to))
    return "\n".join(lines)


def combine_text(new: str | None, original: Original, action: str) -> str:
    lead = new or ""
    if action == "forward":
        return f"{lead}\n\n{forwarded_header_text(original)}\n\n{original.text or ''}".lstrip("\n")
    return f"{lead}\n\n{quote_text(original)}".lstrip("\n")


def combine_html(new: str | None, original: Original, action: str) -> str:
    lead = new or ""
    if action == "forward":
        block = html_lib.escape(forwarded_header_text(original)).replace("\n", "<br>\n")
        inner = original.html or html_lib.escape(original.text or "").replace("\n", "<br>\n")
        return f"{lead}\n<br><div>{block}</div><br>\n{inner}"
    return f"{lead}\n<br>\n{quote_html(original)}"
