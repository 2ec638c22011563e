"""parse_message / decode_part on hand-made messages, one feature per case."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from mailgate.protocols.mime import (
    Address,
    ParsedMessage,
    decode_body,
    decode_part,
    parse_message,
    sanitize_html,
)
from mailgate.protocols.mime.limits import MAX_DEPTH, MAX_HEADER_BYTES, MAX_PARTS


def eml(*lines: str | bytes) -> bytes:
    return b"\r\n".join(line.encode() if isinstance(line, str) else line for line in lines)


def simple(body: bytes, ctype: str = "text/plain", cte: str | None = None, *extra: str) -> bytes:
    headers = ["From: a@example.com", "Subject: s", f"Content-Type: {ctype}"]
    if cte:
        headers.append(f"Content-Transfer-Encoding: {cte}")
    headers.extend(extra)
    return eml(*headers, "", body)


def parse(raw: bytes, **kwargs: object) -> ParsedMessage:
    msg = parse_message(raw, **kwargs)  # type: ignore[arg-type]
    assert not [d for d in msg.defects if d.startswith("internal error")], msg.defects
    return msg


# -- envelope -------------------------------------------------------------------------------


def test_envelope_fields() -> None:
    raw = eml(
        "Return-Path: <bounce@example.com>",
        "Received: from a by b;",
        " Mon, 17 Oct 2022 09:42:21 +0300",
        "Received: from c by d; Mon, 17 Oct 2022 09:42:20 +0300",
        "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.com>",
        "Sender: Secretary <sec@example.com>",
        "To: andris <andris@example.com>, Team: x@example.com, y@example.com;",
        "Cc: c@example.com",
        "Bcc: b@example.com",
        "Reply-To: Replies <r@example.com>",
        "Subject: =?UTF-8?Q?See_on_proovikiri_=F0=9F=A4=A1?=",
        "Date: Mon, 17 Oct 2022 09:42:07 +0300",
        "Message-ID: <CAP123@mail.gmail.com>",
        "In-Reply-To: <parent@example.com>",
        "References: <root@example.com>",
        " <parent@example.com>",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Hello",
    )
    msg = parse(raw)
    assert msg.subject == "See on proovikiri 🤡"
    assert msg.from_ == Address("Jürgen Müller", "juergen@example.com")
    assert msg.sender == [Address("Secretary", "sec@example.com")]
    assert [a.address for a in msg.to] == ["andris@example.com", "x@example.com", "y@example.com"]
    assert msg.cc == [Address("", "c@example.com")]
    assert msg.bcc == [Address("", "b@example.com")]
    assert msg.reply_to == [Address("Replies", "r@example.com")]
    assert msg.date == datetime(2022, 10, 17, 6, 42, 7, tzinfo=UTC)
    assert msg.message_id == "<CAP123@mail.gmail.com>"
    assert msg.in_reply_to == "<parent@example.com>"
    assert msg.references == ["<root@example.com>", "<parent@example.com>"]
    assert msg.headers["received"] == [
        "from a by b; Mon, 17 Oct 2022 09:42:21 +0300",
        "from c by d; Mon, 17 Oct 2022 09:42:20 +0300",
    ]
    assert msg.headers["subject"] == ["See on proovikiri 🤡"]
    assert msg.raw_headers["subject"] == ["=?UTF-8?Q?See_on_proovikiri_=F0=9F=A4=A1?="]
    assert list(msg.headers)[:2] == ["return-path", "received"]
    assert msg.text_plain == "Hello"
    assert msg.text_parts == ["1"]
    assert msg.defects == []


def test_eight_bit_headers_use_utf8_then_body_charset_then_cp1252() -> None:
    raw = eml(
        b"From: \xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd <ivan@example.com>",
        b"Subject: \xf0\xd2\xc9\xd7\xc5\xd4",  # koi8-r, declared on the body
        b"Content-Type: text/plain; charset=koi8-r",
        b"",
        b"\xf0\xd2\xc9\xd7\xc5\xd4",
    )
    msg = parse(raw)
    assert msg.from_ == Address("Иван", "ivan@example.com")
    assert msg.subject == "Привет"
    assert msg.text_plain == "Привет"
    assert parse(eml(b"Subject: caf\xe9", b"", b"x")).subject == "café"


def test_header_without_value_and_odd_names() -> None:
    raw = eml("Subject:", "X-Empty: ", "X-Weird_Name.1: v", "Subject : spaced", "", "body")
    msg = parse(raw)
    assert msg.subject == ""
    assert msg.headers["x-weird_name.1"] == ["v"]
    assert msg.headers["subject"] == ["", "spaced"]


def test_mbox_from_line_and_bare_lf() -> None:
    raw = b"From someone@example.com Mon Jan  1 00:00:00 2024\nSubject: mbox\n\nbody\n"
    msg = parse(raw)
    assert msg.subject == "mbox"
    assert msg.text_plain == "body\n"


# -- charsets in bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ctype", "cte", "expected"),
    [
        ("café crème".encode("iso-8859-1"), "text/plain; charset=iso-8859-1", "8bit", "café crème"),
        (b"caf=E9 cr=E8me", "text/plain; charset=iso-8859-1", "quoted-printable", "café crème"),
        (
            "Съешь ещё этих булок".encode("koi8-r"),
            "text/plain; charset=koi8-r",
            "8bit",
            "Съешь ещё этих булок",
        ),
        (
            "日本語のメール".encode("shift_jis"),
            "text/plain; charset=shift_jis",
            "8bit",
            "日本語のメール",
        ),
        (
            "日本語のメール".encode("shift_jis"),
            "text/plain; charset=x-sjis",
            "8bit",
            "日本語のメール",
        ),
        (
            base64.b64encode("日本語".encode("iso-2022-jp")),
            "text/plain; charset=iso-2022-jp",
            "base64",
            "日本語",
        ),
        (
            "“quotes” – café".encode("cp1252"),
            "text/plain; charset=us-ascii",
            "7bit",
            "“quotes” – café",
        ),
        ("中文邮件".encode("gb18030"), "text/plain; charset=gb2312", "8bit", "中文邮件"),
        ("한국어".encode("cp949"), "text/plain; charset=ks_c_5601-1987", "8bit", "한국어"),
        ("ünïcödé".encode(), "text/plain", None, "ünïcödé"),
        ("ünïcödé".encode(), "text/plain; charset=bogus-charset", None, "ünïcödé"),
    ],
)
def test_body_charsets(body: bytes, ctype: str, cte: str | None, expected: str) -> None:
    assert parse(simple(body, ctype, cte)).text_plain == expected


def test_html_meta_charset_when_undeclared() -> None:
    html = '<html><head><meta charset="windows-1251"></head><body>Привет</body></html>'
    msg = parse(simple(html.encode("windows-1251"), "text/html"))
    assert msg.text_html is not None and "Привет" in msg.text_html
    assert msg.text_plain == "Привет"
    assert msg.plain_generated and not msg.html_generated


# -- transfer encodings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "cte", "expected"),
    [
        (b"aGVsbG8gd29ybGQ=", "base64", b"hello world"),
        (b"aGVsbG8g\r\nd29ybGQ", "base64", b"hello world"),  # missing padding
        (b"aGVs!!bG8=\r\nd29y*bGQ=", "BASE64", b"helloworld"),  # junk, padding mid-stream
        (b"a=3Db=\r\nc", "quoted-printable", b"a=bc"),
        (b"bad =ZZ escape", "quoted-printable", b"bad =ZZ escape"),
        (b"begin 644 f.txt\n%:&5L;&\\`\n`\nend\n", "x-uuencode", b"hello"),
        (b"raw \xff bytes", "8bit", b"raw \xff bytes"),
        (b"raw", None, b"raw"),
        (b"unknown", "x-made-up", b"unknown"),
        (b"", "base64", b""),
    ],
)
def test_decode_body(data: bytes, cte: str | None, expected: bytes) -> None:
    assert decode_body(data, cte) == expected


def test_bad_transfer_encoding_is_shown_raw() -> None:
    msg = parse(simple(b"just text", "text/plain", "x-gzip64"))
    assert msg.text_plain == "just text"


def test_base64_root_part() -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    raw = eml(
        "From: a@example.com",
        'Content-Type: image/png; name="s.png"',
        "Content-Transfer-Encoding: base64",
        'Content-Disposition: attachment; filename="s.png"',
        "",
        base64.b64encode(png).decode(),
    )
    msg = parse(raw)
    assert msg.text_plain is None and msg.text_parts == []
    assert [(a.part, a.filename, a.content_type) for a in msg.attachments] == [
        ("1", "s.png", "image/png")
    ]
    found = decode_part(raw, "1")
    assert found is not None and found[0] == png


def test_format_flowed() -> None:
    body = b"This is a long \r\nflowed line.\r\n> quoted \r\n> more\r\n-- \r\nsig"
    msg = parse(simple(body, "text/plain; format=flowed; charset=utf-8"))
    assert msg.text_plain == "This is a long flowed line.\n> quoted more\n-- \nsig"
    body = b"split wo \r\nrd\r\n"
    msg = parse(simple(body, "text/plain; format=flowed; delsp=yes"))
    assert msg.text_plain is not None and msg.text_plain.startswith("split word")


# -- structure ------------------------------------------------------------------------------

ALTERNATIVE_WITH_ATTACHMENT = eml(
    "From: a@example.com",
    "Subject: =?utf-8?B?0KTQsNC50LvRiw==?=",
    'Content-Type: multipart/mixed; boundary="outer"',
    "",
    "preamble",
    "--outer",
    'Content-Type: multipart/alternative; boundary="inner"',
    "",
    "--inner",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "Plain version",
    "--inner",
    "Content-Type: text/html; charset=utf-8",
    "",
    "<p>HTML version</p>",
    "--inner--",
    "",
    "--outer",
    'Content-Type: application/pdf; name="=?utf-8?B?0L7RgtGH0LXRgi5wZGY=?="',
    "Content-Disposition: attachment;",
    " filename*0*=UTF-8''%D0%B4%D0%BB%D0%B8%D0%BD%D0%BD%D0%BE%D0%B5%20;",
    " filename*1*=%D0%B8%D0%BC%D1%8F;",
    " filename*2=.pdf",
    "Content-Transfer-Encoding: base64",
    "",
    base64.b64encode(b"%PDF-1.4 fake").decode(),
    "--outer",
    'Content-Type: application/octet-stream; name="=?utf-8?B?0L7RgtGH0LXRgi5iaW4=?="',
    "",
    "bin",
    "--outer--",
    "epilogue",
)


def test_alternative_with_attachment() -> None:
    msg = parse(ALTERNATIVE_WITH_ATTACHMENT)
    assert msg.subject == "Файлы"
    assert [p.part for p in msg.parts] == ["1.1", "1.2", "2", "3"]
    assert msg.text_parts == ["1.1", "1.2"]
    assert msg.text_plain == "Plain version"
    assert msg.text_html == "<p>HTML version</p>"
    assert not msg.plain_generated and not msg.html_generated
    assert [(a.part, a.filename) for a in msg.attachments] == [
        ("2", "длинное имя.pdf"),
        ("3", "отчет.bin"),
    ]
    pdf = msg.attachments[0]
    assert pdf.disposition == "attachment" and not pdf.inline and not pdf.embedded
    assert pdf.encoded_size == len(base64.b64encode(b"%PDF-1.4 fake"))
    assert msg.text_plain_size == len("Plain version")
    assert msg.text_html_size == len("<p>HTML version</p>")
    found = decode_part(ALTERNATIVE_WITH_ATTACHMENT, "2")
    assert found is not None
    assert found[0] == b"%PDF-1.4 fake"
    assert found[1].filename == "длинное имя.pdf"
    assert decode_part(ALTERNATIVE_WITH_ATTACHMENT, "1.2") is not None
    assert decode_part(ALTERNATIVE_WITH_ATTACHMENT, "9") is None
    assert decode_part(ALTERNATIVE_WITH_ATTACHMENT, "1") is None  # a container, not a part


PNG = b"\x89PNG\r\n\x1a\n0000"
RELATED = eml(
    "From: a@example.com",
    'Content-Type: multipart/related; boundary="rel"',
    "",
    "--rel",
    "Content-Type: text/html; charset=utf-8",
    "",
    '<p>Logo: <img src="cid:logo@example.com"></p>',
    "--rel",
    "Content-Type: image/png",
    "Content-ID: <logo@example.com>",
    "Content-Transfer-Encoding: base64",
    "",
    base64.b64encode(PNG).decode(),
    "--rel",
    "Content-Type: image/gif",
    "Content-ID: <unused@example.com>",
    "",
    "GIF89a",
    "--rel",
    "Content-Type: image/jpeg",
    'Content-Disposition: inline; filename="photo.jpg"',
    "",
    "JPEG",
    "--rel--",
)


def test_inline_images_with_cid_resolved_by_sanitize_html() -> None:
    msg = parse(RELATED)
    logo, unused, photo = msg.attachments
    assert (logo.content_id, logo.embedded, logo.inline, logo.related) == (
        "logo@example.com",
        True,
        True,
        True,
    )
    assert (unused.embedded, unused.inline) == (False, True)  # image in multipart/related
    assert (photo.embedded, photo.inline, photo.filename) == (False, True, "photo.jpg")
    assert msg.text_plain == "Logo:"
    assert msg.plain_generated
    images = {}
    for attachment in msg.attachments:
        found = decode_part(RELATED, attachment.part)
        assert found is not None
        if attachment.content_id:
            images[attachment.content_id] = (attachment.content_type, found[0])
    assert msg.text_html is not None
    safe = sanitize_html(msg.text_html, embed_images=images)
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in safe


def test_mixed_groups_fill_in_missing_versions() -> None:
    raw = eml(
        'Content-Type: multipart/mixed; boundary="b"',
        "",
        "--b",
        'Content-Type: multipart/alternative; boundary="a"',
        "",
        "--a",
        "Content-Type: text/plain",
        "",
        "first",
        "--a",
        "Content-Type: text/html",
        "",
        "<b>first</b>",
        "--a--",
        "--b",
        "Content-Type: text/plain",
        "",
        "footer",
        "--b--",
    )
    msg = parse(raw)
    assert msg.text_plain == "first\nfooter"
    assert msg.text_html == "<b>first</b>\n<p>footer</p>"
    assert msg.text_parts == ["1.1", "1.2", "2"]


ENCLOSED = eml(
    "From: outer@example.com",
    "Subject: Fwd: inner",
    'Content-Type: multipart/mixed; boundary="o"',
    "",
    "--o",
    "Content-Type: text/plain",
    "",
    "See attached.",
    "--o",
    'Content-Type: message/rfc822; name="inner.eml"',
    "",
    "From: inner@example.com",
    "Subject: inner",
    'Content-Type: multipart/mixed; boundary="i"',
    "",
    "--i",
    "Content-Type: text/plain",
    "",
    "Inner text",
    "--i",
    'Content-Type: application/zip; name="z.zip"',
    "",
    "PK",
    "--i",
    "Content-Type: message/rfc822",
    "",
    "Subject: innermost",
    "",
    "deep text",
    "--i--",
    "--o",
    "Content-Type: message/rfc822",
    "Content-Transfer-Encoding: base64",
    "",
    base64.b64encode(b"Subject: b64\r\nContent-Type: text/html\r\n\r\n<p>b64 body</p>").decode(),
    "--o--",
)


def test_message_rfc822_nesting_part_numbers() -> None:
    msg = parse(ENCLOSED)
    assert [(p.part, p.content_type, p.in_message) for p in msg.parts] == [
        ("1", "text/plain", False),
        ("2", "message/rfc822", False),
        ("2.1", "text/plain", True),
        ("2.2", "application/zip", True),
        ("2.3", "message/rfc822", True),
        ("2.3.1", "text/plain", True),
        ("3", "message/rfc822", False),
        ("3.1", "text/html", True),
    ]
    assert [(a.part, a.content_type, a.filename) for a in msg.attachments] == [
        ("2", "message/rfc822", "inner.eml"),
        ("3", "message/rfc822", None),
    ]
    assert msg.text_plain == "See attached."
    found = decode_part(ENCLOSED, "2")
    assert found is not None and found[0].startswith(b"From: inner@example.com")
    inner = parse(found[0])
    assert inner.subject == "inner" and [a.filename for a in inner.attachments] == ["z.zip", None]
    assert decode_part(ENCLOSED, "2.3.1") == (b"deep text", msg.parts[5])
    b64 = decode_part(ENCLOSED, "3")
    assert b64 is not None and b64[0].startswith(b"Subject: b64")
    assert decode_part(ENCLOSED, "3.1") is not None


CALENDAR = eml(
    "From: organizer@example.com",
    "Subject: Invitation: Sync",
    'Content-Type: multipart/mixed; boundary="m"',
    "",
    "--m",
    'Content-Type: multipart/alternative; boundary="a"',
    "",
    "--a",
    "Content-Type: text/plain; charset=UTF-8",
    "",
    "You are invited.",
    "--a",
    "Content-Type: text/calendar; charset=UTF-8; method=REQUEST",
    "Content-Transfer-Encoding: 7bit",
    "",
    "BEGIN:VCALENDAR",
    "METHOD:REQUEST",
    "BEGIN:VEVENT",
    "SUMMARY:Sync",
    "END:VEVENT",
    "END:VCALENDAR",
    "--a--",
    "--m",
    'Content-Type: application/ics; name="invite.ics"',
    'Content-Disposition: attachment; filename="invite.ics"',
    "",
    "BEGIN:VCALENDAR",
    "--m--",
)


def test_calendar_invite() -> None:
    msg = parse(CALENDAR)
    assert msg.text_plain == "You are invited."
    cal, ics = msg.attachments
    assert (cal.part, cal.content_type, cal.method) == ("1.2", "text/calendar", "REQUEST")
    assert (ics.part, ics.filename, ics.method) == ("2", "invite.ics", None)
    assert msg.to_contract()["attachments"][0]["method"] == "REQUEST"


# -- broken structure -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "defect", "plain"),
    [
        (
            eml(
                "Content-Type: multipart/mixed; boundary=b",
                "",
                "--b",
                "Content-Type: text/plain",
                "",
                "no end",
            ),
            "missing final boundary",
            "no end",
        ),
        (
            eml("Content-Type: multipart/mixed; boundary=b", "", "text without any delimiter"),
            "no boundary delimiter",
            "text without any delimiter",
        ),
        (
            eml("Content-Type: multipart/mixed", "", "no boundary parameter"),
            "without a boundary",
            "no boundary parameter",
        ),
        (
            eml("Content-Type: multipart/alternative; boundary=x", "", "--x--"),
            "has no parts",
            "--x--",
        ),
        (
            eml("Subject: no blank line", "this is not a header"),
            "not a header field",
            "this is not a header",
        ),
        (
            eml(" continuation first", "Subject: x", "", "b"),
            "continuation line without a field",
            "b",
        ),
    ],
)
def test_broken_structure(raw: bytes, defect: str, plain: str) -> None:
    msg = parse(raw)
    assert any(defect in d for d in msg.defects), msg.defects
    assert msg.text_plain == plain


def test_headers_only_message() -> None:
    msg = parse(b"Subject: only headers")
    assert msg.subject == "only headers"
    assert msg.text_plain == ""
    assert [p.part for p in msg.parts] == ["1"]


def test_empty_and_garbage_input() -> None:
    assert parse(b"").subject is None
    assert parse(b"\r\n\r\n").text_plain == "\r\n"
    assert parse(bytes(range(256))).size == 256


def test_boundary_that_prefixes_another() -> None:
    raw = eml(
        'Content-Type: multipart/mixed; boundary="ab"',
        "",
        "--ab",
        'Content-Type: multipart/alternative; boundary="abc"',
        "",
        "--abc",
        "Content-Type: text/plain",
        "",
        "inner",
        "--abc--",
        "--ab",
        "Content-Type: text/plain",
        'Content-Disposition: attachment; filename="x.txt"',
        "",
        "file",
        "--ab--",
    )
    msg = parse(raw)
    assert [p.part for p in msg.parts] == ["1.1", "2"]
    assert msg.text_plain == "inner"


def test_endless_nesting_is_bounded() -> None:
    depth = MAX_DEPTH * 3
    head = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    )
    raw = ("Subject: deep\r\n" + head + "Content-Type: text/plain\r\n\r\nbottom\r\n").encode()
    msg = parse(raw)
    assert any("nesting deeper" in d for d in msg.defects)
    assert msg.subject == "deep"


def test_endless_enclosed_messages_are_bounded() -> None:
    raw = (
        b"Subject: level\r\nContent-Type: message/rfc822\r\n\r\n" * (MAX_DEPTH * 3) + b"\r\nbottom"
    )
    msg = parse(raw)
    assert any("nesting deeper" in d for d in msg.defects)
    assert len(msg.parts) <= MAX_DEPTH + 1


def test_part_count_is_bounded() -> None:
    parts = "".join(
        f"--b\r\nContent-Type: application/x-{i}\r\n\r\n{i}\r\n" for i in range(MAX_PARTS * 4)
    )
    raw = ("Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + "--b--\r\n").encode()
    msg = parse(raw)
    assert len(msg.parts) < MAX_PARTS
    assert any("MIME parts" in d for d in msg.defects)


def test_huge_header_block_is_bounded() -> None:
    header = b"".join(
        b"X-Filler-%d: %s\r\n" % (i, b"x" * 200) for i in range(MAX_HEADER_BYTES // 100)
    )
    raw = b"Subject: first\r\n" + header + b"Subject: late\r\n\r\nbody"
    msg = parse(raw)
    assert msg.subject == "first"
    assert msg.text_plain == "body"
    assert any("header block too large" in d for d in msg.defects)
    assert len(msg.headers) < 2000


def test_huge_folded_subject() -> None:
    subject = "Subject: " + "\r\n ".join(["=?utf-8?q?Die_hei=C3=9Fe?="] * 20000)
    msg = parse(eml(subject, "", "b"))
    assert msg.subject is not None and msg.subject.startswith("Die heißeDie heiße")


def test_one_megabyte_message() -> None:
    line = "Lorem ipsum dolor sit amet, https://example.com/x consectetur adipiscing elit.\r\n"
    body = (line * (1_000_000 // len(line))).encode()
    html = ("<p>" + "<b>x</b> " * 100 + "</p>\r\n") * 1000
    raw = eml(
        'Content-Type: multipart/alternative; boundary="b"',
        "",
        "--b",
        "Content-Type: text/plain",
        "",
        body,
        "--b",
        "Content-Type: text/html",
        "",
        html,
        "--b--",
    )
    msg = parse(raw)
    assert msg.text_plain is not None and len(msg.text_plain) >= 990_000
    assert msg.text_html is not None


# -- options --------------------------------------------------------------------------------


def test_max_text_bytes_and_has_more() -> None:
    raw = simple("ä".encode() * 100, "text/plain; charset=utf-8")
    msg = parse(raw, max_text_bytes=11)
    assert msg.text_plain == "ä" * 5
    assert msg.has_more
    msg = parse(raw, max_text_bytes=1000)
    assert msg.text_plain == "ä" * 100 and not msg.has_more


@pytest.mark.parametrize(
    ("text_type", "plain", "html"),
    [("*", True, True), ("plain", True, False), ("html", False, True)],
)
def test_text_type(text_type: str, plain: bool, html: bool) -> None:
    msg = parse(ALTERNATIVE_WITH_ATTACHMENT, text_type=text_type)
    assert (msg.text_plain is not None, msg.text_html is not None) == (plain, html)


def test_programmer_errors_raise() -> None:
    with pytest.raises(ValueError):
        parse_message(b"", text_type="rich")
    with pytest.raises(TypeError):
        parse_message("not bytes")  # type: ignore[arg-type]


# -- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "auto"),
    [
        (["Auto-Submitted: auto-replied"], True),
        (["Auto-Submitted: no"], False),
        (["X-Autoreply: yes"], True),
        (["Precedence: auto_reply"], True),
        (["Precedence: bulk"], False),
        (["Subject: Automatic reply: Meeting"], True),
        (["Subject: Out of Office: back Monday"], True),
        (["Subject: Re: Out of office plans"], False),
        ([], False),
    ],
)
def test_is_auto_reply(headers: list[str], auto: bool) -> None:
    assert parse(eml(*headers, "", "x")).is_auto_reply is auto


def test_delivery_status_notification() -> None:
    raw = eml(
        "From: MAILER-DAEMON@example.com",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
        "",
        "--r",
        "Content-Type: text/plain",
        "",
        "Could not deliver.",
        "--r",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example.com",
        "",
        "Final-Recipient: rfc822; missing@example.org",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx.example.org",
        "Diagnostic-Code: smtp; 550 5.1.1 No such user",
        "--r",
        "Content-Type: text/rfc822-headers",
        "",
        "Message-ID: <orig@example.com>",
        "--r--",
    )
    msg = parse(raw)
    (status,) = msg.delivery_status
    assert status.recipient == "missing@example.org"
    assert status.action == "failed"
    assert status.status == "5.1.1"
    assert status.diagnostic_code == "550 5.1.1 No such user"
    assert status.remote_mta == "mx.example.org"
    assert status.reporting_mta == "mx.example.com"
    assert [a.content_type for a in msg.attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]


# -- contract mapping -----------------------------------------------------------------------


def test_to_contract_field_names() -> None:
    msg = parse(
        RELATED.replace(
            b"From: a@example.com",
            b"From: A <a@example.com>\r\nSubject: hi\r\nDate: Mon, 17 Oct 2022 09:42:07 +0300\r\nMessage-ID: <m@x>",
        )
    )
    out = msg.to_contract(attachment_id=lambda part: f"ID{part}", text_id="TXT", include_text=True)
    assert out["subject"] == "hi"
    assert out["from"] == {"name": "A", "address": "a@example.com"}
    assert out["date"] == "2022-10-17T06:42:07.000Z"
    assert out["messageId"] == "<m@x>"
    assert out["headers"]["subject"] == ["hi"]
    first = out["attachments"][0]
    assert first == {
        "id": "ID2",
        "contentType": "image/png",
        "encodedSize": len(base64.b64encode(PNG)),
        "embedded": True,
        "inline": True,
        "contentId": "<logo@example.com>",
    }
    assert out["text"]["id"] == "TXT"
    assert out["text"]["encodedSize"] == {"html": msg.text_html_size}
    assert out["text"]["hasMore"] is False
    assert "plain" in out["text"] and "html" in out["text"]
    assert out["isAutoReply"] is False


def test_single_huge_header_line_is_cut() -> None:
    raw = b"Subject: ok\r\nX-Huge: " + b"a" * (MAX_HEADER_BYTES * 4) + b"\r\n\r\nbody"
    msg = parse(raw)
    assert msg.subject == "ok"
    assert len(msg.raw_headers["x-huge"][0]) < MAX_HEADER_BYTES
    assert msg.text_plain == "body"
