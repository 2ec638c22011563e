"""Hypothesis fuzzing: anything a server sends either parses or raises ProtocolError."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgate.errors import ProtocolError
from mailgate.protocols.imap import ImapLimits, ResponseParser

from .test_imap_transcript import DOVECOT_SESSION

SMALL = ImapLimits(
    max_line_length=256,
    max_literal_size=128,
    max_response_size=1024,
    max_literals_per_response=4,
    max_nesting_depth=8,
    max_sequence_set_expansion=1000,
    max_tokens_per_response=200,
)
SAMPLE_LINES = DOVECOT_SESSION.split(b"\r\n")
#: raise for a longer fuzzing run: IMAP_FUZZ_EXAMPLES=20000 pytest tests/unit/test_imap_fuzz.py
EXAMPLES = int(os.environ.get("IMAP_FUZZ_EXAMPLES", "300"))


def _feed_all(parser: ResponseParser, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            parser.feed(chunk)
            # memory stays bounded by the limits, whatever arrives
            assert parser._framer.buffered <= SMALL.max_response_size + SMALL.max_line_length + 64
    except ProtocolError:
        pass


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_bytes(chunks: list[bytes]) -> None:
    _feed_all(ResponseParser(SMALL), chunks)


ALPHABET = b'* ()[]{}"\\~+0123456789:,NILOKNOBADFETCHUIDLISTBODY\r\n\x00\xff'


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.sampled_from([bytes([b]) for b in ALPHABET]), max_size=400))
def test_imap_alphabet_soup(tokens: list[bytes]) -> None:
    _feed_all(ResponseParser(SMALL), [b"".join(tokens)])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(DOVECOT_SESSION)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "delete", "insert", "dup"]))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [b"(", b")", b"{5}\r\n", b"{99999}\r\n", b'"', b"\r\n", b"[", b"]", b"NIL"]
                )
            )
        else:
            data[pos:pos] = data[pos : pos + 30]
        if not data:
            data = bytearray(b"x")
    return bytes(data)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mutated(), st.integers(1, 64))
def test_mutated_session(data: bytes, chunk: int) -> None:
    parser = ResponseParser(ImapLimits(max_literal_size=4096, max_line_length=4096))
    try:
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
    except ProtocolError:
        pass


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from(SAMPLE_LINES), st.binary(max_size=40))
def test_valid_line_with_garbage_appended(line: bytes, junk: bytes) -> None:
    _feed_all(ResponseParser(SMALL), [line + b"\r\n", junk, b"\r\n"])
