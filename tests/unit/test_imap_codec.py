"""Modified UTF-7, sequence sets and command rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailgate.protocols.imap import (
    CommandEncoder,
    Literal,
    Mailbox,
    Raw,
    Secret,
    SequenceMatcher,
    compress,
    decode_utf7,
    encode_utf7,
    expand,
)
from mailgate.protocols.imap.commands import format_internaldate, sequence_arg

UTF7_CASES = [
    ("INBOX", b"INBOX"),
    ("&", b"&-"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("日本語", b"&ZeVnLIqe-"),
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("A&B", b"A&-B"),
    ("😀", b"&2D3eAA-"),
    ("Отправленные", b"&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
]


@pytest.mark.parametrize(("text", "wire"), UTF7_CASES)
def test_utf7(text: str, wire: bytes) -> None:
    assert encode_utf7(text) == wire
    assert decode_utf7(wire) == text


@given(st.text())
def test_utf7_round_trip(text: str) -> None:
    # lone surrogates cannot be encoded to UTF-16; skip them
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return
    wire = encode_utf7(text)
    assert wire.isascii()
    assert decode_utf7(wire) == text


@pytest.mark.parametrize("bad", [b"&Jjo", b"&Jjo!-", b"caf\xc3\xa9", b"&AGE-x&=-"])
def test_utf7_bad(bad: bytes) -> None:
    with pytest.raises(ValueError):
        decode_utf7(bad)


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        ([1], "1"),
        ([3, 1, 2], "1:3"),
        ([1, 2, 3, 5, 7, 8, 9, 9], "1:3,5,7:9"),
        ([10, 4], "4,10"),
    ],
)
def test_compress(ids: list[int], text: str) -> None:
    assert compress(ids) == text


@given(st.sets(st.integers(min_value=1, max_value=500), min_size=1))
def test_compress_expand_round_trip(ids: set[int]) -> None:
    assert expand(compress(ids)) == sorted(ids)


def test_expand_and_matcher() -> None:
    assert expand("5:3,9") == [3, 4, 5, 9]
    with pytest.raises(ValueError):
        expand("1:*")
    with pytest.raises(ValueError):
        expand("1:100", limit=10)
    with pytest.raises(ValueError):
        compress([])
    m = SequenceMatcher("1:3,10:*,7")
    assert [i for i in range(1, 13) if i in m] == [1, 2, 3, 7, 10, 11, 12]
    assert 5 in SequenceMatcher("*")
    assert sequence_arg([1, 2, 3]) == "1:3"
    assert sequence_arg("1:*") == "1:*"
    with pytest.raises(ValueError):
        sequence_arg("1 OR 2")


def test_render_quoting_and_literals() -> None:
    enc = CommandEncoder()
    r = enc.render("A1", "LOGIN", "joe", Secret('p"a\\ss'))
    assert r.parts == (b'A1 LOGIN "joe" "p\\"a\\\\ss"\r\n',)
    assert "p" not in r.log_line.split("LOGIN", 1)[1].replace('"joe"', "")
    r = enc.render("A2", "LOGIN", "joe", Secret("pässwörd"))
    assert r.parts == (b'A2 LOGIN "joe" {10}\r\n', "pässwörd".encode() + b"\r\n")
    assert "***" in r.log_line and "pä" not in r.log_line
    r = enc.render("A3", "SELECT", Mailbox("Entwürfe"), [Raw("CONDSTORE")])
    assert r.parts == (b'A3 SELECT "Entw&APw-rfe" (CONDSTORE)\r\n',)
    r = enc.render("A4", "SELECT", Mailbox("inbox"))
    assert r.parts == (b'A4 SELECT "INBOX"\r\n',)
    r = enc.render("A5", "X", "a\r\nb", Literal(b"\x00\x01", binary=True), 42)
    assert r.parts == (b"A5 X {4}\r\n", b"a\r\nb ~{2}\r\n", b"\x00\x01 42\r\n")
    assert r.synchronizing


def test_render_literal_plus_minus_and_utf8() -> None:
    r = CommandEncoder(literal_plus=True).render("A1", "APPEND", Mailbox("X"), b"abc")
    assert r.parts == (b'A1 APPEND "X" {3+}\r\nabc\r\n',)
    enc = CommandEncoder(literal_minus=True)
    assert enc.render("A1", "X", b"a").parts == (b"A1 X {1+}\r\na\r\n",)
    assert len(enc.render("A1", "X", b"a" * 5000).parts) == 2
    r = CommandEncoder(utf8=True).render("A1", "CREATE", Mailbox("Café"))
    assert r.parts == ('A1 CREATE "Café"\r\n'.encode(),)
    with pytest.raises(ValueError):
        CommandEncoder().render("A1", "X", Raw("a\r\nb"))
    with pytest.raises(TypeError):
        CommandEncoder().render("A1", "X", 1.5)  # type: ignore[arg-type]


def test_format_internaldate() -> None:
    assert (
        format_internaldate(datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))
        == "02-Jan-2020 03:04:05 +0000"
    )
    tz = timezone(-timedelta(hours=7, minutes=30))
    assert (
        format_internaldate(datetime(1996, 7, 17, 2, 44, 25, tzinfo=tz))
        == "17-Jul-1996 02:44:25 -0730"
    )
    assert format_internaldate(datetime(2020, 12, 31)) == "31-Dec-2020 00:00:00 +0000"
