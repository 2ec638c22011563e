"""Every corpus message parses without an exception escaping; well-known ones give known results."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailgate.protocols.mime import (
    ParsedMessage,
    decode_part,
    html_to_text,
    parse_message,
    sanitize_html,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "mime"
FILES = sorted(DATA.rglob("*.eml"))
IDS = [str(p.relative_to(DATA)) for p in FILES]


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parsed(name: str) -> ParsedMessage:
    msg = parse_message(load(name))
    assert not [d for d in msg.defects if d.startswith("internal error")], msg.defects
    return msg


def test_corpus_is_present() -> None:
    assert len(FILES) >= 50
    for folder in ("flanker", "mailparser", "postal-mime"):
        assert any((DATA / folder).glob("LICENSE*")), folder


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_corpus_message_parses(path: Path) -> None:
    raw = path.read_bytes()
    msg = parse_message(raw, max_text_bytes=100_000)
    assert not [d for d in msg.defects if d.startswith("internal error")], msg.defects
    assert msg.size == len(raw)
    for part in msg.parts:
        assert decode_part(raw, part.part) is not None, part.part
    if msg.text_html is not None:
        sanitize_html(msg.text_html)
    contract = msg.to_contract(attachment_id=lambda part: part, include_text=True)
    assert isinstance(contract["attachments"], list)


def test_crispin_torture_test() -> None:
    msg = parsed("flanker/torture.eml")
    assert msg.subject == "Multi-media mail demonstration"
    assert msg.from_ is not None and msg.from_.address == "mrc@CAC.Washington.EDU"
    assert msg.message_id == "<CMM.0.88.687168092.mrc@akbar.cac.washington.edu>"
    assert len(msg.attachments) == 11
    assert sum(a.content_type == "message/rfc822" for a in msg.attachments) == 8
    assert msg.text_plain is not None and msg.text_plain.startswith("This is a demonstration")
    assert msg.text_parts == ["1"]
    numbers = [p.part for p in msg.parts]
    assert len(numbers) == 40
    assert "12.3.2.1" in numbers and "12.3.4.1" in numbers
    gif = decode_part(load("flanker/torture.eml"), "10")
    assert gif is not None and gif[0].startswith(b"GIF8")


def test_finnie_torture_test() -> None:
    msg = parsed("postal-mime/mimetorture.eml")
    assert msg.subject == "Ryan Finnie's MIME Torture Test v1.0"
    assert len(msg.attachments) == 10
    assert all(a.content_type == "message/rfc822" for a in msg.attachments)
    assert "10.1.1.1.2" in [p.part for p in msg.parts]


def test_iphone() -> None:
    msg = parsed("flanker/iphone.eml")
    assert msg.subject == "Subject"
    (photo,) = msg.attachments
    assert (photo.content_type, photo.filename, photo.inline) == ("image/jpeg", "photo.JPG", True)
    assert msg.text_plain is not None and "Hello" in msg.text_plain
    assert msg.text_parts == ["1", "3"]
    data = decode_part(load("flanker/iphone.eml"), photo.part)
    assert data is not None and data[0][:3] == b"\xff\xd8\xff"


def test_calendar_event() -> None:
    msg = parsed("postal-mime/calendar-event.eml")
    assert msg.subject is not None and msg.subject.startswith("Invitation: Test event ⏰")
    methods = [(a.content_type, a.method) for a in msg.attachments]
    assert ("text/calendar", "REQUEST") in methods
    assert len(msg.attachments) == 2
    assert msg.text_html is not None and msg.text_plain is not None


def test_nodemailer_embedded_images() -> None:
    msg = parsed("mailparser/nodemailer.eml")
    embedded = [a for a in msg.attachments if a.embedded]
    assert [a.filename for a in embedded] == ["image.png", "nyan cat ✔.gif"]
    assert all(a.inline for a in embedded)
    assert msg.subject is not None and msg.subject.startswith("Nodemailer is unicode friendly ✔")


def test_bounce_delivery_status() -> None:
    msg = parsed("postal-mime/bounce.eml")
    assert [s.recipient for s in msg.delivery_status] == ["htfgvhyufthdgcvhgjyfthgc@ethereal.email"]
    assert msg.delivery_status[0].action == "failed"
    assert msg.is_auto_reply  # Auto-Submitted: auto-replied


def test_base64_encoded_root() -> None:
    raw = load("mailparser/base64encodedroot.eml")
    msg = parsed("mailparser/base64encodedroot.eml")
    (shot,) = msg.attachments
    assert (shot.part, shot.filename, shot.content_type) == ("1", "screenshot.png", "image/png")
    data = decode_part(raw, "1")
    assert data is not None and data[0].startswith(b"\x89PNG")


def test_eight_bit_filename_cut_mid_character() -> None:
    msg = parsed("flanker/russian-attachment-yahoo.eml")
    (image,) = msg.attachments
    assert image.filename is not None and image.filename.startswith("Картинка с очень")


def test_encoded_names() -> None:
    assert parsed("flanker/encoded-header.eml").from_ is not None
    assert parsed("flanker/encoded-header.eml").from_.name == "Foo, Bar"  # type: ignore[union-attr]
    enclosed = parsed("flanker/enclosed.eml")
    assert enclosed.to[0].name == "Александр Клижентас☯"
    assert [a.content_type for a in enclosed.attachments] == ["message/rfc822"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("flanker/missing-final-boundary.eml", "Some body"),
        ("flanker/dashed-boundaries.eml", "Hi"),
        ("flanker/no-ctype.eml", "I'm just testing message parsing"),
        ("flanker/bilingual-simple.eml", "А эта линия по-русски."),
        ("mailparser/nested.eml", "Good evening."),
        ("flanker/mailgun-pic.eml", "Мейлган! Хахах!"),
    ],
)
def test_known_text(name: str, text: str) -> None:
    msg = parsed(name)
    assert msg.text_plain is not None and text in msg.text_plain


def test_hostile_html() -> None:
    msg = parsed("mailparser/htmllargecallstack.eml")
    assert msg.text_html is not None and len(msg.text_html) > 500_000
    assert isinstance(html_to_text(msg.text_html), str)
