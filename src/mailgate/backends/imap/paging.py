"""Paging of message listings and searches: newest first, exact totals, stable cursors (pure).

A listing is the ascending list of matching UIDs of one mailbox, shown newest first (highest UID
first). A page is chosen by number (``page``) or by a cursor, which wins when both are given::

    cursor  "imap_" base64url( version:u8 | mailbox:u32be | anchor:u32be | page:u32be | dir:u8 )

``dir`` 1 ("next") shows the ``pageSize`` newest messages with a UID below ``anchor`` (the last UID
of the page the cursor came from); ``dir`` 0 ("prev") the ``pageSize`` oldest messages with a UID
above ``anchor`` (the first UID of that page). Anchors are UIDs, not positions, so a cursor stays
right when mail arrives or is expunged meanwhile: no message is shown twice or skipped. ``page`` is
the page number the cursor leads to when nothing changed, only used to report ``page``. The
mailbox number pins the cursor to one (path, UIDVALIDITY): a cursor of another mailbox is refused.

A malformed cursor raises :class:`mailgate.errors.BadRequest` (``InvalidCursor``).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailgate.errors import BadRequest

CURSOR_PREFIX = "imap_"
CURSOR_VERSION = 1
#: Longest cursor string looked at before decoding.
MAX_CURSOR_LENGTH = 64
#: Largest ``pageSize`` (contract maximum).
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20

_CURSOR = struct.Struct(">BIIIB")


@dataclass(frozen=True, slots=True)
class Cursor:
    mailbox: int
    anchor: int
    page: int
    forward: bool  # True: older messages (next page); False: newer ones (previous page)

    def encode(self) -> str:
        raw = _CURSOR.pack(CURSOR_VERSION, self.mailbox, self.anchor, self.page, int(self.forward))
        return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _invalid() -> BadRequest:
    return BadRequest("Invalid paging cursor", "InvalidCursor", key="cursor")


def decode_cursor(value: str) -> Cursor:
    """Parse a cursor made by :meth:`Cursor.encode`; anything else raises BadRequest."""
    if not value.startswith(CURSOR_PREFIX) or len(value) > MAX_CURSOR_LENGTH:
        raise _invalid()
    body = value[len(CURSOR_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise _invalid() from None
    if len(raw) != _CURSOR.size:
        raise _invalid()
    version, mailbox, anchor, page, direction = _CURSOR.unpack(raw)
    if version != CURSOR_VERSION or direction not in (0, 1) or anchor == 0:
        raise _invalid()
    return Cursor(mailbox=mailbox, anchor=anchor, page=page, forward=bool(direction))


@dataclass(frozen=True, slots=True)
class PageSlice:
    """The UIDs of one page (newest first) and the paging fields of the reply."""

    uids: list[int]
    total: int
    page: int
    pages: int
    next_cursor: str | None
    prev_cursor: str | None

    def fields(self) -> dict[str, object]:
        return {
            "total": self.total,
            "page": self.page,
            "pages": self.pages,
            "nextPageCursor": self.next_cursor,
            "prevPageCursor": self.prev_cursor,
        }


def page_count(total: int, page_size: int) -> int:
    return max(1, -(-total // page_size))


def slice_page(
    uids: Sequence[int],
    *,
    mailbox: int,
    page_size: int,
    page: int = 0,
    cursor: Cursor | None = None,
) -> PageSlice:
    """Choose one page of ``uids`` (ascending, unique) newest first, with cursors around it."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size out of range: {page_size}")
    total = len(uids)
    if cursor is not None:
        if cursor.mailbox != mailbox:
            raise BadRequest(
                "The paging cursor belongs to another mailbox", "InvalidCursor", key="cursor"
            )
        if cursor.forward:
            start = total - bisect.bisect_left(uids, cursor.anchor)  # newest-first index
        else:
            end = total - bisect.bisect_right(uids, cursor.anchor)
            start = max(0, end - page_size)
        number = cursor.page
    else:
        start = page * page_size
        number = page
    start = min(start, total)
    end = min(total, start + page_size)
    # newest first: index i of the reversed list is uids[total - 1 - i]
    chosen = [uids[total - 1 - i] for i in range(start, end)]
    next_cursor = prev_cursor = None
    if chosen and end < total:
        next_cursor = Cursor(mailbox, chosen[-1], number + 1, True).encode()
    if chosen and start > 0:
        prev_cursor = Cursor(mailbox, chosen[0], max(0, number - 1), False).encode()
    if cursor is not None and not cursor.forward and start == 0:
        number = 0
    return PageSlice(
        uids=chosen,
        total=total,
        page=number,
        pages=page_count(total, page_size),
        next_cursor=next_cursor,
        prev_cursor=prev_cursor,
    )


# -- a plain listing by page number: message sequence numbers, no SEARCH ------------------------
#
# Every message of a mailbox matches a plain listing, so its ascending UID list is the mailbox's
# sequence numbers 1..EXISTS in order: newest-first index i is sequence number EXISTS - i. A page
# by number is then one ``FETCH lo:hi`` of the view the last NOOP/SELECT brought up to date, and
# the reply is exactly what :func:`slice_page` gives for that view's UID list.


def sequence_window(total: int, *, page_size: int, page: int) -> tuple[int, int] | None:
    """Sequence numbers ``(lo, hi)`` of page ``page`` (newest first) of a mailbox with ``total``
    messages, or None when the page is past the end."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size out of range: {page_size}")
    start = min(page * page_size, total)
    end = min(total, start + page_size)
    if start >= end:
        return None
    return total - end + 1, total - start


def sequence_page(
    total: int, found: Mapping[int, int], *, mailbox: int, page_size: int, page: int
) -> PageSlice:
    """The page :func:`sequence_window` chose, from ``found`` (sequence number → UID of what the
    FETCH returned; a number the server did not answer for is left out)."""
    window = sequence_window(total, page_size=page_size, page=page)
    chosen = (
        []
        if window is None
        else [found[s] for s in range(window[1], window[0] - 1, -1) if s in found]
    )
    start = min(page * page_size, total)
    end = min(total, start + page_size)
    next_cursor = prev_cursor = None
    if chosen and end < total:
        next_cursor = Cursor(mailbox, chosen[-1], page + 1, True).encode()
    if chosen and start > 0:
        prev_cursor = Cursor(mailbox, chosen[0], max(0, page - 1), False).encode()
    return PageSlice(
        uids=chosen,
        total=total,
        page=page,
        pages=page_count(total, page_size),
        next_cursor=next_cursor,
        prev_cursor=prev_cursor,
    )
