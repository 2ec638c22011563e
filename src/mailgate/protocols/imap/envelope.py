"""ENVELOPE (RFC 3501 §7.4.2) → :class:`Envelope` with decoded address lists.

Display names and subjects may be RFC 2047 encoded words: they are decoded with the stdlib
``email.header``. Group syntax (a NIL host opening a group, a NIL mailbox closing it) is flattened:
members are listed, each carrying the ``group`` name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from .values import header_text, text

__all__ = ["Address", "Envelope", "parse_envelope"]


@dataclass(frozen=True, slots=True)
class Address:
    name: str | None
    mailbox: str | None
    host: str | None
    group: str | None = None

    @property
    def email(self) -> str:
        if self.mailbox and self.host:
            return f"{self.mailbox}@{self.host}"
        return self.mailbox or ""


@dataclass(frozen=True, slots=True)
class Envelope:
    date: datetime | None
    date_raw: str | None
    subject: str | None
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: str | None
    message_id: str | None


def _addresses(tok: Any) -> tuple[Address, ...]:
    if not isinstance(tok, list):
        return ()
    out: list[Address] = []
    group: str | None = None
    for item in tok:
        if not isinstance(item, list) or len(item) < 4:
            continue
        name = header_text(item[0])
        mailbox = text(item[2])
        host = text(item[3])
        if host is None:
            group = mailbox  # NIL mailbox ends a group, any other starts one
            continue
        out.append(Address(name=name, mailbox=mailbox, host=host, group=group))
    return tuple(out)


def _parse_date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None


def parse_envelope(tok: Any) -> Envelope | None:
    """Build an :class:`Envelope` from the ENVELOPE list; None if it is NIL or not a list."""
    if not isinstance(tok, list):
        return None
    fields = list(tok) + [None] * (10 - len(tok))
    date_raw = _safe_text(fields[0])
    return Envelope(
        date=_parse_date(date_raw),
        date_raw=date_raw,
        subject=_safe_header(fields[1]),
        from_=_addresses(fields[2]),
        sender=_addresses(fields[3]),
        reply_to=_addresses(fields[4]),
        to=_addresses(fields[5]),
        cc=_addresses(fields[6]),
        bcc=_addresses(fields[7]),
        in_reply_to=_safe_text(fields[8]),
        message_id=_safe_text(fields[9]),
    )


def _safe_text(tok: Any) -> str | None:
    if tok is None or isinstance(tok, list):
        return None
    return text(tok)


def _safe_header(tok: Any) -> str | None:
    if tok is None or isinstance(tok, list):
        return None
    return header_text(tok)
