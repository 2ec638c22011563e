"""Listing pages and cursors (backends/imap/paging.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailgate.backends.imap.paging import (
    Cursor,
    decode_cursor,
    page_count,
    sequence_page,
    sequence_window,
    slice_page,
)
from mailgate.errors import BadRequest

UIDS = list(range(1, 46))  # 45 messages, UIDs 1..45


def test_cursor_round_trip() -> None:
    cursor = Cursor(mailbox=7, anchor=4_000_000_000, page=12, forward=False)
    encoded = cursor.encode()
    assert encoded.startswith("imap_") and "=" not in encoded
    assert decode_cursor(encoded) == cursor


@pytest.mark.parametrize(
    "bad",
    ["", "imap_", "imap_!!!", "gmail_AAAA", "imap_" + "A" * 100, "imap_AAAAAAAAAAAAAAAAAAAAAA"],
)
def test_bad_cursors_are_400(bad: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_cursor(bad)
    assert info.value.code == "InvalidCursor"


def test_page_numbers_newest_first() -> None:
    first = slice_page(UIDS, mailbox=1, page_size=20)
    assert first.uids == list(range(45, 25, -1))
    assert (first.total, first.page, first.pages) == (45, 0, 3)
    assert first.prev_cursor is None and first.next_cursor is not None
    last = slice_page(UIDS, mailbox=1, page_size=20, page=2)
    assert last.uids == [5, 4, 3, 2, 1] and last.next_cursor is None
    assert slice_page(UIDS, mailbox=1, page_size=20, page=9).uids == []
    assert slice_page([], mailbox=1, page_size=20).fields() == {
        "total": 0,
        "page": 0,
        "pages": 1,
        "nextPageCursor": None,
        "prevPageCursor": None,
    }


def test_cursors_walk_and_stay_stable_when_mail_arrives() -> None:
    first = slice_page(UIDS, mailbox=1, page_size=20)
    assert first.next_cursor
    grown = [*UIDS, 46, 47]  # two new messages arrive
    second = slice_page(grown, mailbox=1, page_size=20, cursor=decode_cursor(first.next_cursor))
    assert second.uids == list(range(25, 5, -1)) and second.page == 1 and second.total == 47
    assert second.prev_cursor
    back = slice_page(grown, mailbox=1, page_size=20, cursor=decode_cursor(second.prev_cursor))
    assert back.uids == list(range(45, 25, -1))
    assert back.prev_cursor is not None  # the two new ones are above
    top = slice_page(grown, mailbox=1, page_size=20, cursor=decode_cursor(back.prev_cursor))
    # fewer than a page above: the previous page is the (full) first page
    assert top.uids == list(range(47, 27, -1)) and top.page == 0 and top.prev_cursor is None


def test_cursor_of_another_mailbox_is_refused() -> None:
    cursor = Cursor(mailbox=2, anchor=10, page=1, forward=True)
    with pytest.raises(BadRequest):
        slice_page(UIDS, mailbox=1, page_size=20, cursor=cursor)


def test_expunged_anchor_still_works() -> None:
    first = slice_page(UIDS, mailbox=1, page_size=10)
    assert first.next_cursor
    without = [u for u in UIDS if u != 36]  # the anchor itself is gone
    second = slice_page(without, mailbox=1, page_size=10, cursor=decode_cursor(first.next_cursor))
    assert second.uids == list(range(35, 25, -1))


@given(
    st.lists(st.integers(1, 10_000), unique=True, max_size=300).map(sorted),
    st.integers(1, 50),
)
def test_walking_next_cursors_visits_everything_once(uids: list[int], size: int) -> None:
    seen: list[int] = []
    page = slice_page(uids, mailbox=3, page_size=size)
    seen += page.uids
    while page.next_cursor:
        page = slice_page(uids, mailbox=3, page_size=size, cursor=decode_cursor(page.next_cursor))
        seen += page.uids
    assert seen == sorted(uids, reverse=True)
    assert page_count(len(uids), size) == max(1, -(-len(uids) // size))


# -- listing by page number over sequence numbers (no SEARCH) --------------------------------


@given(
    st.lists(st.integers(1, 10_000), unique=True, max_size=120).map(sorted),
    st.integers(1, 25),
    st.integers(0, 8),
)
def test_sequence_page_same_as_slice_page(uids: list[int], page_size: int, page: int) -> None:
    """With every message fetched, paging by sequence numbers gives exactly the search answer."""
    found = {seq: uid for seq, uid in enumerate(uids, 1)}
    expected = slice_page(uids, mailbox=3, page_size=page_size, page=page)
    got = sequence_page(len(uids), found, mailbox=3, page_size=page_size, page=page)
    assert got == expected
    window = sequence_window(len(uids), page_size=page_size, page=page)
    if expected.uids:
        assert window is not None
        assert [found[s] for s in range(window[1], window[0] - 1, -1)] == expected.uids
    else:
        assert window is None


def test_sequence_window() -> None:
    assert sequence_window(45, page_size=20, page=0) == (26, 45)
    assert sequence_window(45, page_size=20, page=2) == (1, 5)
    assert sequence_window(45, page_size=20, page=3) is None
    assert sequence_window(0, page_size=20, page=0) is None
    with pytest.raises(ValueError):
        sequence_window(45, page_size=0, page=0)


def test_sequence_page_missing_answers() -> None:
    """A number the server did not answer for (expunged meanwhile) is left out; the cursors
    anchor on the UIDs that were shown."""
    found = {seq: seq * 10 for seq in range(1, 46) if seq not in (45, 30)}
    page = sequence_page(45, found, mailbox=3, page_size=20, page=0)
    assert page.uids == [s * 10 for s in range(44, 25, -1) if s != 30]
    assert page.total == 45 and page.pages == 3 and page.prev_cursor is None
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == Cursor(3, 260, 1, True)
