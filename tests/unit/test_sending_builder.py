"""Building RFC 5322 messages for submit (stdlib email; compared after parsing back)."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from mailgate.backends.smtp.sender import Envelope
from mailgate.errors import BadRequest
from mailgate.services.sending.builder import (
    MAX_MESSAGE_SIZE,
    MAX_REFERENCES,
    Addr,
    Attachment,
    Draft,
    build_message,
    limit_references,
    prepare_raw,
    validate_address,
    with_bcc,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def draft(**kw: object) -> Draft:
    base: dict[str, object] = {
        "from_": Addr("me@example.com", "Me"),
        "to": [Addr("you@example.org")],
    }
    base.update(kw)
    return Draft(**base)  # type: ignore[arg-type]


def content_types(msg: EmailMessage) -> list[str]:
    return [p.get_content_type() for p in msg.walk()]


@pytest.mark.parametrize(
    ("text", "html", "atts", "expected"),
    [
        ("hi", None, [], ["text/plain"]),
        (None, "<p>hi</p>", [], ["text/html"]),
        (None, None, [], ["text/plain"]),
        ("hi", "<p>hi</p>", [], ["multipart/alternative", "text/plain", "text/html"]),
        (
            "hi",
            '<img src="cid:c1">',
            [Attachment(b"GIF", "a.gif", "image/gif", cid="c1")],
            ["multipart/alternative", "text/plain", "multipart/related", "text/html", "image/gif"],
        ),
        (
            "hi",
            None,
            [Attachment(b"%PDF", "r.pdf")],
            ["multipart/mixed", "text/plain", "application/pdf"],
        ),
        (
            "hi",
            '<img src="cid:c1">',
            [Attachment(b"GIF", "a.gif", "image/gif", cid="c1"), Attachment(b"x", "x.txt")],
            [
                "multipart/mixed",
                "multipart/alternative",
                "text/plain",
                "multipart/related",
                "text/html",
                "image/gif",
                "text/plain",
            ],
        ),
    ],
)
def test_structure(
    text: str | None, html: str | None, atts: list[Attachment], expected: list[str]
) -> None:
    built = build_message(draft(text=text, html=html, attachments=atts), domain="example.com")
    assert content_types(parse(built.raw)) == expected


def test_headers_and_envelope() -> None:
    built = build_message(
        draft(
            to=[Addr("a@x.org", "Ä Person")],
            cc=[Addr("c@x.org")],
            bcc=[Addr("b@x.org"), Addr("A@x.org")],
            reply_to=[Addr("r@x.org")],
            subject="Grüße",
            text="t",
            headers={"X-One": "1", "List-Unsubscribe": "<mailto:u@x.org>"},
            in_reply_to="<p@x>",
            references=["<root@x>", "p@x"],
        ),
        domain="example.com",
        now=NOW,
    )
    msg = parse(built.raw)
    assert msg["Subject"] == "Grüße"
    assert msg["To"].addresses[0].display_name == "Ä Person"
    assert "Bcc" not in msg
    assert msg["Message-ID"] == built.message_id and built.message_id.endswith("@example.com>")
    assert msg["Date"] == "Sun, 01 Mar 2026 12:00:00 +0000"
    assert msg["In-Reply-To"] == "<p@x>"
    assert msg["References"] == "<root@x> <p@x>"
    assert msg["X-One"] == "1"
    assert built.envelope.mail_from == "me@example.com"
    # to + cc + bcc, deduplicated case-insensitively, in order
    assert built.envelope.rcpt_to == ("a@x.org", "c@x.org", "b@x.org")
    assert built.bcc == ("b@x.org", "A@x.org")
    assert b"\r\n" in built.raw and b"\n" not in built.raw.replace(b"\r\n", b"")


def test_non_ascii_text_is_7bit_safe() -> None:
    built = build_message(draft(text="ü" * 2000, html="<p>ü</p>"), domain="example.com")
    assert built.raw.isascii()
    assert max(len(line) for line in built.raw.split(b"\r\n")) <= 998
    body = parse(built.raw).get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "ü" * 2000 + "\n"


def test_attachment_bytes_round_trip() -> None:
    blob = bytes(range(256)) * 10
    built = build_message(
        draft(text="x", attachments=[Attachment(blob, "b.bin", "application/octet-stream")]),
        domain="d",
    )
    [part] = [p for p in parse(built.raw).walk() if p.get_filename() == "b.bin"]
    assert part.get_content() == blob
    assert part.get_content_disposition() == "attachment"


def test_envelope_override_and_given_message_id() -> None:
    built = build_message(
        draft(text="x", message_id="given@id"),
        domain="d",
        envelope=Envelope("bounce@d", ("other@d",)),
    )
    assert built.message_id == "<given@id>"
    assert built.envelope == Envelope("bounce@d", ("other@d",))


@pytest.mark.parametrize(
    "kw",
    [
        {"subject": "a\r\nBcc: x@y"},
        {"headers": {"Content-Type": "text/plain"}},
        {"headers": {"Bad Name": "x"}},
        {"headers": {"X-Ok": "line\nbreak"}},
        {"to": [], "cc": [], "bcc": []},
        {"attachments": [Attachment(b"x", "a", "not a type")]},
    ],
)
def test_bad_input_is_a_400(kw: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        build_message(draft(text="x", **kw), domain="d")


def test_size_limit() -> None:
    with pytest.raises(BadRequest) as exc:
        build_message(
            draft(text="x", attachments=[Attachment(b"\0" * (MAX_MESSAGE_SIZE), "big.bin")]),
            domain="d",
        )
    assert exc.value.code == "MessageTooLarge"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("user@example.com", True),
        ("first.last+tag@sub.example.co", True),
        ("  padded@example.com ", True),
        ("no-at-sign", False),
        ("two@@example.com", False),
        ("space in@example.com", False),
        ("a@b@c", False),
        ("<a@b.c>", False),
        ("a@.example.com", False),
        ("a@example..com", False),
        ("", False),
        ("x" * 400 + "@example.com", False),
    ],
)
def test_validate_address(value: str, ok: bool) -> None:
    if ok:
        assert validate_address(value) == value.strip()
    else:
        with pytest.raises(BadRequest):
            validate_address(value)


def test_prepare_raw_adds_missing_headers_and_hides_bcc() -> None:
    raw = (
        b"From: A <a@x.org>\nTo: b@x.org\nBcc: hidden@x.org\nSubject: =?utf-8?q?h=C3=A9?=\n\nbody\n"
    )
    built = prepare_raw(raw, domain="x.org", now=NOW)
    assert b"Bcc" not in built.raw
    assert built.raw.endswith(b"\r\n\r\nbody\r\n")
    assert b"Message-ID: <" in built.raw and b"Date: Sun, 01 Mar 2026" in built.raw
    assert built.envelope == Envelope("a@x.org", ("b@x.org", "hidden@x.org"))
    assert built.subject == "hé"
    assert built.bcc == ("hidden@x.org",)


def test_prepare_raw_keeps_a_complete_message_byte_for_byte() -> None:
    raw = (
        b"From: a@x.org\r\nTo: b@x.org\r\nMessage-ID: <k@x>\r\n"
        b"Date: Sun, 01 Mar 2026 12:00:00 +0000\r\nX-Folded: one\r\n two\r\n\r\nbody\r\n"
    )
    built = prepare_raw(raw, domain="x.org")
    assert built.raw == raw
    assert built.message_id == "<k@x>"


def test_prepare_raw_without_recipients_is_refused() -> None:
    with pytest.raises(BadRequest):
        prepare_raw(b"From: a@x.org\r\nSubject: x\r\n\r\nbody", domain="x.org")


def test_with_bcc_prepends_the_header() -> None:
    out = with_bcc(b"From: a@x\r\n\r\nbody", ["b@x", "c@x"])
    assert out.startswith(b"Bcc: b@x, c@x\r\nFrom: a@x")
    assert with_bcc(b"raw", []) == b"raw"


def test_references_are_limited_keeping_the_root() -> None:
    refs = [f"<{i}@x>" for i in range(200)]
    kept = limit_references(refs)
    assert len(kept) == MAX_REFERENCES
    assert kept[0] == "<0@x>" and kept[-1] == "<199@x>"
