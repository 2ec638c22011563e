"""Chunked transfer decoding of streamed attachments (backends/imap/attachments.py)."""

from __future__ import annotations

import base64
import binascii
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate.backends.imap.attachments import (
    MAX_QP_CARRY,
    Base64Decoder,
    PassThrough,
    QuotedPrintableDecoder,
    StreamDecoder,
    make_decoder,
)
from mailgate.protocols.mime import decode_body


def run(decoder: StreamDecoder, data: bytes, cuts: list[int]) -> bytes:
    out = []
    last = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        out.append(decoder.feed(data[last:cut]))
        last = cut
    out.append(decoder.flush())
    return b"".join(out)


def mime_base64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def test_decoder_choice() -> None:
    assert isinstance(make_decoder("BASE64"), Base64Decoder)
    assert isinstance(make_decoder("quoted-printable"), QuotedPrintableDecoder)
    assert isinstance(make_decoder("7bit"), PassThrough)
    assert isinstance(make_decoder(None), PassThrough)
    assert make_decoder("x-uuencode").feed(b"abc") == b""


def test_base64_one_byte_chunks() -> None:
    data = os.urandom(1000)
    encoded = mime_base64(data)
    dec = Base64Decoder()
    out = b"".join(dec.feed(encoded[i : i + 1]) for i in range(len(encoded))) + dec.flush()
    assert out == data


def test_base64_megabyte_chunks_are_flat() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    encoded = mime_base64(data)
    dec = Base64Decoder()
    chunk = 1024 * 1024
    parts = []
    for i in range(0, len(encoded), chunk):
        parts.append(dec.feed(encoded[i : i + chunk]))
        assert len(dec._carry) < 4  # never more than one partial group waits
    parts.append(dec.flush())
    assert b"".join(parts) == data


def test_base64_concatenated_blocks_and_junk() -> None:
    encoded = b"QQ==\r\nQUJD\r\n!!QkM=\r\n  Zm9v"  # blocks after padding, junk, no final padding
    assert run(Base64Decoder(), encoded, [3, 5, 11]) == decode_body(encoded, "base64")
    assert run(Base64Decoder(), encoded, []) == b"AABCBCfoo"


@settings(max_examples=200)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 5000), max_size=8), st.booleans())
def test_base64_any_cuts_match_whole_decoding(data: bytes, cuts: list[int], wrap: bool) -> None:
    encoded = mime_base64(data) if wrap else base64.b64encode(data)
    assert run(Base64Decoder(), encoded, cuts) == data


def test_qp_escape_and_soft_break_split_across_chunks() -> None:
    encoded = b"caf=C3=A9 au lait, very long line that goes on =\r\nand on=\r\n\r\nend=3D"
    whole = binascii.a2b_qp(encoded)
    for cut in range(len(encoded) + 1):
        assert run(QuotedPrintableDecoder(), encoded, [cut]) == whole, cut


def test_qp_long_line_is_bounded() -> None:
    encoded = b"=41" * (MAX_QP_CARRY // 2)  # one huge line, no line break at all
    dec = QuotedPrintableDecoder()
    out = [dec.feed(encoded[i : i + 1000]) for i in range(0, len(encoded), 1000)]
    assert len(dec._carry) <= MAX_QP_CARRY + 1000
    assert b"".join(out) + dec.flush() == b"A" * (MAX_QP_CARRY // 2)


@settings(max_examples=200)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 8000), max_size=8))
def test_qp_any_cuts_match_whole_decoding(data: bytes, cuts: list[int]) -> None:
    encoded = binascii.b2a_qp(data).replace(b"\n", b"\r\n")
    assert run(QuotedPrintableDecoder(), encoded, cuts) == binascii.a2b_qp(encoded)


@pytest.mark.parametrize("encoding", ["7bit", "8bit", "binary", "x-unknown"])
def test_passthrough(encoding: str) -> None:
    data = os.urandom(500)
    assert run(make_decoder(encoding), data, [7, 300]) == data
