"""Header values: RFC 2047, parameters (RFC 2231), dates, message ids, addresses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailgate.protocols.mime import Address, decode_header_value, parse_addresses, parse_date
from mailgate.protocols.mime.headers import (
    parse_content_fields,
    parse_message_id,
    parse_references,
    unfold,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain subject", "plain subject"),
        ("=?UTF-8?Q?See_on_proovikiri_=F0=9F=A4=A1?=", "See on proovikiri 🤡"),
        ("=?utf-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
        ("=?iso-8859-1?q?caf=E9?= au lait", "café au lait"),
        ("=?koi8-r?B?8NLJ18XU?=", "Привет"),
        ("=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=", "日本語"),
        # white space between encoded words disappears, around plain text it stays
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        ("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
        ("Re: =?utf-8?q?caf=C3=A9?= time", "Re: café time"),
        # a multi-byte character split across two encoded words
        ("=?utf-8?B?0J/RgNC4?= =?utf-8?B?0LLQtdGC?=", "Привет"),
        ("=?utf-8?Q?=D0?= =?utf-8?Q?=9F?=", "П"),
        # language suffix (RFC 2231 section 5)
        ("=?utf-8*en?q?hello?=", "hello"),
        # broken: missing padding, bad charset, unterminated word, encoded words without spaces
        ("=?utf-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
        ("=?utf-8?B?0J/RgNC40LLQtdG?=", "Приве\ufffd"),
        ("=?x-unknown?q?plain?=", "plain"),
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        ("=?utf-8?q?a?==?utf-8?q?b?=", "ab"),
        ("=?utf-8?q?spaces in q?=", "spaces in q"),
        # raw 8-bit
        (b"Gr\xc3\xbc\xc3\x9fe", "Grüße"),
        (b"Gr\xfc\xdfe", "Grüße"),
        ("", ""),
    ],
)
def test_decode_header_value(raw: str | bytes, expected: str) -> None:
    assert decode_header_value(raw) == expected


def test_unfold_keeps_white_space() -> None:
    assert unfold("a\r\n b\n\tc") == "a b\tc"


@pytest.mark.parametrize(
    ("ctype", "disposition", "attrs"),
    [
        ("text/plain", None, {"content_type": "text/plain", "charset": None}),
        (
            "TEXT/HTML; CHARSET=ISO-8859-1",
            None,
            {"content_type": "text/html", "charset": "iso-8859-1"},
        ),
        (
            'text/plain; charset="utf-8"; format=flowed; delsp=yes',
            None,
            {"format_flowed": True, "delsp": True},
        ),
        ('multipart/mixed; boundary="=_abc"', None, {"boundary": "=_abc"}),
        ("multipart/mixed; boundary = nextPart", None, {"boundary": "nextPart"}),
        ("text/calendar; method=request; charset=UTF-8", None, {"method": "REQUEST"}),
        ("garbage", None, {"content_type": "text/plain"}),
        (None, None, {"content_type": "text/plain"}),
        ('application/pdf; name="a.pdf"', None, {"filename": "a.pdf", "disposition": None}),
        (
            "application/pdf",
            'ATTACHMENT; filename="report.pdf"',
            {"filename": "report.pdf", "disposition": "attachment"},
        ),
        # RFC 2047 inside a quoted filename (not standard, very common)
        (
            "application/pdf",
            'attachment; filename="=?UTF-8?B?0L7RgtGH0LXRgi5wZGY=?="',
            {"filename": "отчет.pdf"},
        ),
        # RFC 2231 with charset, and continuations
        (
            "application/pdf",
            "attachment; filename*=UTF-8''%E2%82%AC%20rates.pdf",
            {"filename": "€ rates.pdf"},
        ),
        (
            "application/pdf",
            "attachment;\r\n filename*0*=UTF-8''%D0%B4%D0%BB%D0%B8%D0%BD%D0%BD%D0%BE%D0%B5%20;\r\n"
            " filename*1*=%D0%B8%D0%BC%D1%8F;\r\n filename*2=.txt",
            {"filename": "длинное имя.txt"},
        ),
        (
            "application/pdf",
            'attachment; filename*0="long "; filename*1="name.pdf"',
            {"filename": "long name.pdf"},
        ),
        (
            "application/pdf",
            'attachment; filename="unterminated.pdf',
            {"filename": "unterminated.pdf"},
        ),
    ],
)
def test_parse_content_fields(
    ctype: str | None, disposition: str | None, attrs: dict[str, object]
) -> None:
    info = parse_content_fields(ctype, disposition)
    for key, value in attrs.items():
        assert getattr(info, key) == value, key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "Mon, 17 Oct 2022 09:42:07 +0300",
            datetime(2022, 10, 17, 9, 42, 7, tzinfo=timezone(timedelta(hours=3))),
        ),
        ("17 Oct 2022 06:42:07 GMT", datetime(2022, 10, 17, 6, 42, 7, tzinfo=UTC)),
        ("Mon, 17 Oct 2022 06:42:07 -0000", datetime(2022, 10, 17, 6, 42, 7, tzinfo=UTC)),
        ("Tue, 24 Dec 91 08:14:38 EST", datetime(1991, 12, 24, 13, 14, 38, tzinfo=UTC)),
        ("2022-10-17T06:42:07Z", datetime(2022, 10, 17, 6, 42, 7, tzinfo=UTC)),
        ("not a date", None),
        ("Mon, 99 Foo 99999 99:99:99 +9999", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_date(raw: str | None, expected: datetime | None) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<abc@example.com>", "<abc@example.com>"),
        ("  <abc@example.com> (comment)", "<abc@example.com>"),
        ("abc@example.com", "<abc@example.com>"),
        ("", None),
        (None, None),
        ("junk with spaces", "junk with spaces"),
    ],
)
def test_parse_message_id(raw: str | None, expected: str | None) -> None:
    assert parse_message_id(raw) == expected


def test_parse_references() -> None:
    assert parse_references("<a@x>\r\n <b@x> <c@x>") == ["<a@x>", "<b@x>", "<c@x>"]
    assert parse_references("a@x b@x") == ["<a@x>", "<b@x>"]
    assert parse_references(None) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "Andris Reinman <andris.reinman@gmail.com>",
            [("Andris Reinman", "andris.reinman@gmail.com")],
        ),
        ("user@example.com", [("", "user@example.com")]),
        (
            '"Doe, John" <john@example.com>, jane@example.com',
            [("Doe, John", "john@example.com"), ("", "jane@example.com")],
        ),
        # an encoded word holding a comma must not split the address
        ("=?UTF-8?B?Rm9vLCBCYXI=?= <foo.bar@example.com>", [("Foo, Bar", "foo.bar@example.com")]),
        # encoded word inside quotes (not standard, sent by real clients)
        (
            '"=?utf-8?b?0JDQu9C10LrRgdCw0L3QtNGA?=" <a@example.com>',
            [("Александр", "a@example.com")],
        ),
        (
            "Team: a@example.com, B <b@example.com>;",
            [("", "a@example.com"), ("B", "b@example.com")],
        ),
        ("undisclosed-recipients:;", []),
        ("john@example.com (John Doe)", [("John Doe", "john@example.com")]),
        ("<>", []),
        ("", []),
        ("Broken <unterminated@example.com", [("Broken", "unterminated@example.com")]),
        ("a@b.c,,, ,d@e.f", [("", "a@b.c"), ("", "d@e.f")]),
        ("Müller <m@example.com>", [("Müller", "m@example.com")]),
    ],
)
def test_parse_addresses(raw: str, expected: list[tuple[str, str]]) -> None:
    assert [(a.name, a.address) for a in parse_addresses(raw)] == expected


def test_parse_addresses_long_list_is_bounded() -> None:
    value = ", ".join(f"User {i} <user{i}@example.com>" for i in range(5000))
    found = parse_addresses(value)
    assert len(found) == 1000
    assert found[0] == Address(name="User 0", address="user0@example.com")


@pytest.mark.parametrize(
    "raw",
    [
        "<<<>>>",
        '"unterminated',
        "a@",
        "@b",
        ":;:;:;",
        "=?utf-8?q?=?=",
        "\x00\x01",
        "(((((((",
        "a" * 20000,
    ],
)
def test_parse_addresses_never_raises(raw: str) -> None:
    assert isinstance(parse_addresses(raw), list)
