"""Property tests: no input makes parse_message (or the helpers) raise."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgate.protocols.mime import (
    decode_body,
    decode_header_value,
    decode_part,
    decode_text,
    html_to_text,
    parse_addresses,
    parse_message,
    sanitize_html,
    text_to_html,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "mime"
SEEDS = [p.read_bytes() for p in sorted(DATA.rglob("*.eml")) if p.stat().st_size < 8_000]
# MAILGATE_FUZZ_EXAMPLES=5000 for a longer run
FUZZ = settings(
    max_examples=int(os.environ.get("MAILGATE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(raw: bytes) -> None:
    msg = parse_message(raw, max_text_bytes=5000)
    assert not [d for d in msg.defects if d.startswith("internal error")], msg.defects
    for part in msg.parts[:5]:
        decode_part(raw, part.part)


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes(raw: bytes) -> None:
    check(raw)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["delete", "insert", "flip", "dup", "truncate", "token"]))
        if kind == "delete":
            del data[pos : pos + draw(st.integers(1, 200))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=40))
        elif kind == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 500))]
        elif kind == "truncate":
            del data[pos:]
        else:
            token = draw(
                st.sampled_from(
                    [
                        b"\r\n--",
                        b"\r\n\r\n",
                        b"=?utf-8?B?",
                        b"?=",
                        b"Content-Type: multipart/mixed; boundary=x\r\n",
                        b"Content-Type: message/rfc822\r\n\r\n",
                        b"Content-Transfer-Encoding: base64\r\n",
                        b'charset="x-bogus"',
                        b"filename*0*=utf-8''%FF%FE;",
                        b"\x00",
                        b"\xff\xfe",
                        b"<img src=cid:x>",
                    ]
                )
            )
            data[pos:pos] = token
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_corpus_messages(raw: bytes) -> None:
    check(raw)


HEADER_NAMES = st.sampled_from(
    ["Subject", "From", "To", "Cc", "Date", "Message-ID", "Content-Type", "Content-Disposition",
     "Content-Transfer-Encoding", "Content-ID", "References", "X-Other"]
)  # fmt: skip


@st.composite
def structured(draw: st.DrawFn, depth: int = 0) -> bytes:
    headers = draw(st.lists(st.tuples(HEADER_NAMES, st.text(max_size=60)), max_size=6))
    lines = [f"{name}: {value}".encode("utf-8", "surrogatepass") for name, value in headers]
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.text(alphabet="abcXYZ=_-'()+,./:?", min_size=1, max_size=12))
        kind = draw(st.sampled_from(["mixed", "alternative", "related", "digest"]))
        lines.append(f'Content-Type: multipart/{kind}; boundary="{boundary}"'.encode())
        children = draw(st.lists(structured(depth + 1), max_size=4))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + child + b"\r\n" for child in children)
        if draw(st.booleans()):
            body += b"--" + boundary.encode() + b"--\r\n"
    else:
        body = draw(st.binary(max_size=200))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@FUZZ
@given(structured())
def test_structured_messages(raw: bytes) -> None:
    check(raw)


@FUZZ
@given(st.text(max_size=300))
def test_text_helpers_never_raise(value: str) -> None:
    decode_header_value(value)
    parse_addresses(value)
    sanitize_html(value, embed_images={"x": ("image/png", b"1")})
    html_to_text(value)
    text_to_html(value)


@FUZZ
@given(
    st.binary(max_size=300),
    st.sampled_from([None, "utf-8", "shift_jis", "koi8-r", "utf-16", "utf-7", "big5", "bogus"]),
)
def test_byte_helpers_never_raise(data: bytes, charset: str | None) -> None:
    decode_text(data, charset)
    decode_header_value(data)
    for cte in (None, "base64", "quoted-printable", "x-uuencode", "8bit"):
        decode_body(data, cte)
