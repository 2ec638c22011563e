"""The full indexer's compact records: flag bits, packing, chunked views."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailgate.store.index import (
    CHUNK_SHIFT,
    RECORD,
    MailboxCursor,
    MailboxIndex,
    decode_flags,
    encode_flags,
    pack_records,
    unpack_records,
)


@pytest.mark.parametrize(
    ("flags", "extra"),
    [
        ([], ""),
        (["\\Seen"], ""),
        (["\\Seen", "\\Flagged", "\\Answered", "\\Draft", "\\Deleted"], ""),
        (["$Forwarded", "$Junk"], ""),
        (["\\Seen", "custom", "Another"], "Another custom"),
    ],
)
def test_flags_round_trip(flags: list[str], extra: str) -> None:
    bits, got_extra = encode_flags(flags)
    assert got_extra == extra
    assert sorted(decode_flags(bits, got_extra)) == sorted(flags)


def test_recent_is_ignored_and_case_folded() -> None:
    bits, extra = encode_flags(["\\Recent", "\\SEEN"])
    assert extra == "" and decode_flags(bits) == ["\\Seen"]


@given(
    st.dictionaries(
        st.integers(1, 2**32 - 1),
        st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**63 - 1)),
        max_size=200,
    )
)
def test_records_pack_round_trip(records: dict[int, tuple[int, int]]) -> None:
    packed = pack_records(records)
    assert len(packed) == RECORD.size * len(records) == 14 * len(records)
    assert unpack_records(packed) == records


def test_writing_an_unloaded_chunk_is_refused() -> None:
    index = MailboxIndex("a", 1)
    with pytest.raises(RuntimeError):
        index.put(5, 1, 1)
    index.chunks[0] = {}
    index.put(5, 1, 1)
    assert index.get(5) == (1, 1) and index.dirty == {0}
    with pytest.raises(RuntimeError):
        index.remove(1 << CHUNK_SHIFT)
    assert index.remove(5) is True and index.remove(5) is False


def test_keywords_tracked_for_write() -> None:
    index = MailboxIndex("a", 1)
    index.chunks[0] = {}
    index.put(7, 0, 1, "label")
    assert index.keywords_dirty == {7: "label"}
    index.put(7, 0, 2, "")
    assert index.keywords_dirty == {7: None} and 7 not in index.keywords


def test_cursor_round_trip() -> None:
    cursor = MailboxCursor("INBOX", 5, 10, 99, 8, "fast", True, 9)
    assert MailboxCursor.from_redis(cursor.to_redis()) == cursor
