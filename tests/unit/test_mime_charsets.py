"""Charset decoding: declared, aliased, wrong and missing charsets."""

from __future__ import annotations

import pytest

from mailgate.protocols.mime import decode_text, normalize_charset
from mailgate.protocols.mime.charsets import decode_cp1252, decode_header_bytes

RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 4
JAPANESE = "日本語のメールです。よろしくお願いします。"


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        ("café crème".encode("iso-8859-1"), "iso-8859-1", "café crème"),
        ("café crème".encode("iso-8859-1"), "latin1", "café crème"),
        (RUSSIAN.encode("koi8-r"), "koi8-r", RUSSIAN),
        (RUSSIAN.encode("koi8-r"), "KOI8-R", RUSSIAN),
        (RUSSIAN.encode("windows-1251"), "windows-1251", RUSSIAN),
        (JAPANESE.encode("shift_jis"), "shift_jis", JAPANESE),
        (JAPANESE.encode("shift_jis"), "x-sjis", JAPANESE),
        (JAPANESE.encode("iso-2022-jp"), "iso-2022-jp", JAPANESE),
        (JAPANESE.encode("euc-jp"), "euc-jp", JAPANESE),
        ("中文邮件测试".encode("gb18030"), "gb2312", "中文邮件测试"),
        ("中文郵件測試".encode("big5"), "big5", "中文郵件測試"),
        ("한국어 메일".encode("cp949"), "ks_c_5601-1987", "한국어 메일"),
        ("한국어 메일".encode("cp949"), "euc-kr", "한국어 메일"),
        ("Hi Mom -☺-!".encode("utf-7"), "unicode-1-1-utf-7", "Hi Mom -☺-!"),
        ("naïve ünïcödé".encode(), "utf8", "naïve ünïcödé"),
        ("naïve ünïcödé".encode(), "UTF-8", "naïve ünïcödé"),
        ("naïve ünïcödé".encode(), '"utf-8"', "naïve ünïcödé"),
        # windows-1252 bytes declared as us-ascii
        ("“Smart” quotes – café".encode("cp1252"), "us-ascii", "“Smart” quotes – café"),
        # UTF-8 declared as latin-1 (mislabelled)
        ("Grüße aus Köln".encode(), "iso-8859-1", "Grüße aus Köln"),
        # undeclared
        (b"plain ascii", None, "plain ascii"),
        ("ünïcödé without a label".encode(), None, "ünïcödé without a label"),
        # unknown / placeholder / refused charsets
        ("ünïcödé".encode(), "x-no-such-charset", "ünïcödé"),
        ("ünïcödé".encode(), "unknown-8bit", "ünïcödé"),
        (b"\\u0041", "unicode_escape", "\\u0041"),
        (b"uryyb", "rot13", "uryyb"),
        # byte-order marks
        (b"\xef\xbb\xbfBOM text", "iso-8859-1", "BOM text"),
        ("utf-16 text".encode("utf-16"), None, "utf-16 text"),
        (b"", "utf-8", ""),
    ],
)
def test_decode_text(data: bytes, charset: str | None, expected: str) -> None:
    assert decode_text(data, charset) == expected


def test_decode_text_detects_undeclared_cyrillic() -> None:
    data = (RUSSIAN * 5).encode("windows-1251")
    assert decode_text(data, None) == RUSSIAN * 5


def test_decode_text_wrong_multibyte_label_falls_back() -> None:
    # Declared iso-2022-jp (7-bit), actually UTF-8.
    assert decode_text("Grüße ☺".encode(), "iso-2022-jp") == "Grüße ☺"
    # Declared big5, but not valid big5 and not UTF-8: decoded with a guess, never raises.
    assert isinstance(decode_text(b"\xff\xfe\xfa\x81 abc", "big5"), str)


def test_decode_text_never_raises_on_garbage() -> None:
    garbage = bytes(range(256)) * 3
    for charset in (None, "utf-8", "shift_jis", "utf-16", "iso-2022-jp", "big5", "utf-7"):
        assert isinstance(decode_text(garbage, charset), str)


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("utf8", "utf-8"),
        ("UTF-8", "utf-8"),
        ("latin1", "cp1252"),
        ("iso-8859-1", "cp1252"),
        ("us-ascii", "cp1252"),
        ("windows-1252", "cp1252"),
        ("ks_c_5601-1987", "cp949"),
        ("x-sjis", "cp932"),
        ("gb2312", "gb18030"),
        ("unicode-1-1-utf-7", "utf-7"),
        ("utf-8*en", "utf-8"),
        (None, None),
        ("", None),
        ("unknown-8bit", None),
        ("nope-charset", None),
        ("rot13", None),
        ("idna", None),
    ],
)
def test_normalize_charset(label: str | None, codec: str | None) -> None:
    got = normalize_charset(label)
    if codec == "cp1252":
        assert got in ("cp1252", "ascii", "iso8859-1")
    else:
        assert got == codec


def test_cp1252_maps_every_byte() -> None:
    assert len(decode_cp1252(bytes(range(256)))) == 256


@pytest.mark.parametrize(
    ("data", "hint", "expected"),
    [
        (b"plain", None, "plain"),
        ("Jürgen".encode(), None, "Jürgen"),
        ("Jürgen".encode("latin-1"), None, "Jürgen"),
        ("Привет".encode("koi8-r"), "koi8-r", "Привет"),
        # UTF-8 cut in the middle of a character keeps the rest readable
        (
            "Картинка с очень длинным именем".encode()[:-1],
            None,
            "Картинка с очень длинным имене\ufffd",
        ),
    ],
)
def test_decode_header_bytes(data: bytes, hint: str | None, expected: str) -> None:
    assert decode_header_bytes(data, hint) == expected
