"""The findall tokenizer (protocols/imap/lexer.py) against the per-token reference it replaced.

The reference is the previous implementation (one regex match object per token), kept here
verbatim: on any input both give the same tokens, or both raise ProtocolError.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgate.errors import ProtocolError
from mailgate.protocols.imap import ImapLimits, ResponseParser
from mailgate.protocols.imap.lexer import Frame, tokenize
from mailgate.protocols.imap.limits import DEFAULT_LIMITS

from .test_imap_fuzz import SMALL
from .test_imap_transcript import DOVECOT_SESSION

_REF_TOKEN = re.compile(
    rb"""
     (\ +)                                            # 1 spaces
    |(\()                                             # 2 open
    |(\))                                             # 3 close
    |"((?:[^"\\]|\\.)*)"                              # 4 quoted string
    |((?:[^\x00-\x20()"{\x7f\[]|\[[^\]\r\n]*\]|\[)+)  # 5 atom
    |(.)                                              # 6 anything else: error
    """,
    re.VERBOSE | re.DOTALL,
)
_REF_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def reference(frame: Frame, limits: ImapLimits = DEFAULT_LIMITS, start: int = 0) -> list[Any]:
    root: list[Any] = []
    stack: list[list[Any]] = [root]
    cur = root
    count = 0
    for index, text in enumerate(frame.texts):
        for m in _REF_TOKEN.finditer(text, start if index == 0 else 0):
            kind = m.lastindex
            if kind == 5:
                cur.append(m.group(5).decode("utf-8", "surrogateescape"))
            elif kind == 1:
                continue
            elif kind == 4:
                q = m.group(4)
                if b"\\" in q:
                    q = _REF_UNESCAPE.sub(rb"\1", q)
                cur.append(q)
            elif kind == 2:
                if len(stack) > limits.max_nesting_depth:
                    raise ProtocolError("nested too deeply")
                new: list[Any] = []
                cur.append(new)
                stack.append(new)
                cur = new
            elif kind == 3:
                if len(stack) == 1:
                    raise ProtocolError("unbalanced ')'")
                stack.pop()
                cur = stack[-1]
            else:
                raise ProtocolError("unexpected byte")
            count += 1
            if count > limits.max_tokens_per_response:
                raise ProtocolError("too many tokens")
        if index < len(frame.literals):
            cur.append(frame.literals[index])
    if len(stack) != 1:
        raise ProtocolError("unbalanced '('")
    return root


def outcome(fn: Any, frame: Frame, limits: ImapLimits) -> Any:
    try:
        return fn(frame, limits, 2)
    except ProtocolError:
        return ProtocolError


FETCH_LINE = (
    b'* 7 FETCH (UID 1981 FLAGS (\\Seen $Label) INTERNALDATE "25-Nov-2026 06:54:57 +0000" '
    b'RFC822.SIZE 265 ENVELOPE ("Thu, 02 Jan 2020 09:00:00 +0000" "Re: \\"quoted\\" \\\\ x" '
    b'(("Sender 8" NIL "sender8" "example.test")) NIL NIL ((NIL NIL "recipient" "example.test"))'
    b' NIL NIL NIL "<id@example.test>") BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL '
    b'NIL "7bit" 23 1 NIL NIL NIL NIL)("image" "png" ("name" "a b.png") "<cid>" NIL "base64" 9 '
    b'NIL ("inline" ("filename" "a b.png")) NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL) '
    b"BODY[HEADER.FIELDS (SUBJECT FROM)]<0> NIL)"
)


@pytest.mark.parametrize(
    "line",
    [
        FETCH_LINE,
        b"* 1 FETCH (UID 5)",
        b'* LIST (\\HasNoChildren) "/" [Gmail]/Sent]',
        b'* OK ""',
        b"* 1 FETCH (BODY[1.2 (x)] NIL)",
        b"* 1 FETCH (X [unterminated",
        b'* 1 FETCH (UID "unterminated)',
        b"* 1 FETCH (UID {5})",
        b"* 1 FETCH (UID\t5)",
        b"* 1 FETCH (UID \x7f)",
        b"* 1 FETCH ((((((((((deep))))))))))",
        b"* 1 FETCH (UID 5))",
        b"* 1 FETCH ((UID 5)",
        b'* 1 FETCH ("a""b"c(d)e)',
        b"* 1 FETCH (\xff\xfe atom)",
        b"*   1   FETCH   (  UID   5  )  ",
    ],
)
def test_same_tokens_as_the_reference(line: bytes) -> None:
    frame = Frame([line], [])
    for limits in (DEFAULT_LIMITS, SMALL):
        assert outcome(tokenize, frame, limits) == outcome(reference, frame, limits)


def test_literals_between_texts() -> None:
    frame = Frame([b"* 1 FETCH (BODY[] ", b' UID 4 X "y")'], [b"raw (\r\n) bytes"])
    assert tokenize(frame, start=2) == reference(frame, start=2)
    assert tokenize(frame, start=2) == [
        "1",
        "FETCH",
        ["BODY[]", b"raw (\r\n) bytes", "UID", "4", "X", b"y"],
    ]


def test_token_limit() -> None:
    line = b"* 1 FETCH (" + b"A " * (SMALL.max_tokens_per_response + 1) + b")"
    with pytest.raises(ProtocolError):
        tokenize(Frame([line], []), SMALL, 2)


def test_fetch_summary_parses() -> None:
    (fetch,) = ResponseParser().feed(FETCH_LINE + b"\r\n")
    env = fetch.envelope
    assert env is not None and env.subject == 'Re: "quoted" \\ x'
    assert env.from_[0].email == "sender8@example.test" and env.message_id == "<id@example.test>"
    root = fetch.bodystructure
    assert root is not None and [p.part for p in root.walk()] == ["TEXT", "1", "2"]
    assert root.children[1].filename == "a b.png"
    assert fetch.attrs["BODY[HEADER.FIELDS (SUBJECT FROM)]<0>"] is None


ALPHABET = b' ()[]{}"\\~+0123456789:NILUIDFETCHBODY\t\x00\x7f\xff'


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.sampled_from([bytes([b]) for b in ALPHABET]), max_size=200))
def test_soup_same_as_reference(parts: list[bytes]) -> None:
    frame = Frame([b"* " + b"".join(parts)], [])
    for limits in (DEFAULT_LIMITS, SMALL):
        assert outcome(tokenize, frame, limits) == outcome(reference, frame, limits)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.integers(0, len(DOVECOT_SESSION) - 1), st.binary(min_size=1, max_size=4))
def test_session_lines_same_as_reference(pos: int, junk: bytes) -> None:
    data = DOVECOT_SESSION[:pos] + junk + DOVECOT_SESSION[pos:]
    for line in data.split(b"\r\n"):
        if line.startswith(b"* "):
            frame = Frame([line], [])
            assert outcome(tokenize, frame, SMALL) == outcome(reference, frame, SMALL)
