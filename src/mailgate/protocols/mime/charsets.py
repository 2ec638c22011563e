"""Charset names and bytes -> str decoding that never raises.

Rules (in order):

1. A byte-order mark wins (UTF-8, UTF-16).
2. Charset labels are normalized: aliases seen in mail (``x-sjis``, ``ks_c_5601-1987``,
   ``unicode-1-1-utf-7``...), and supersets as browsers use them (WHATWG Encoding Standard):
   ``gb2312``/``gbk`` -> ``gb18030``, ``shift_jis`` -> ``cp932``, ``euc-kr`` -> ``cp949``,
   ``big5`` -> ``big5hkscs``, ``us-ascii``/``iso-8859-1`` -> ``windows-1252``.
   Python codecs that are not charsets (``unicode_escape``, ``idna``, ``rot13``...) are refused.
3. The ASCII / Latin-1 family is checked: text that is valid UTF-8 with non-ASCII bytes is
   UTF-8 mislabelled (the reverse is very rare); otherwise windows-1252.
4. Any other declared charset is trusted when the bytes decode strictly with it.
5. Otherwise (undeclared, unknown, or the bytes do not fit): UTF-8, then charset-normalizer's
   guess on the first ``MAX_CHARSET_DETECT_BYTES``, then windows-1252 (every byte maps).
"""

from __future__ import annotations

import codecs
import functools

from .limits import MAX_CHARSET_DETECT_BYTES

_ALIASES = {
    "x-sjis": "cp932",
    "sjis": "cp932",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-shift_jis": "cp932",
    "x-shift-jis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "chinese": "gb18030",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "euc-kr": "cp949",
    "windows-949": "cp949",
    "x-windows-949": "cp949",
    "unicode-1-1-utf-7": "utf-7",
    "utf7": "utf-7",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "iso-8859-11": "cp874",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-8-e": "iso8859-8",
    "iso-8859-6-i": "iso8859-6",
    "iso-8859-6-e": "iso8859-6",
    "latin-9": "iso8859-15",
    "x-mac-roman": "mac-roman",
    "macintosh": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-user-defined": "latin-1",
    "iso-2022-jp": "iso2022_jp_ext",
}

_UNDECLARED = {
    "",
    "unknown",
    "unknown-8bit",
    "x-unknown",
    "default",
    "charset",
    "none",
    "auto",
    "8bit",
    "7bit",
    "binary",
}

# Codec names (as codecs.lookup() reports them) that are not charsets for mail text.
_REFUSED = {
    "unicode-escape",
    "raw-unicode-escape",
    "idna",
    "punycode",
    "undefined",
    "unicode-internal",
    "charmap",
    "palmos",
}

_LATIN_FAMILY = {"ascii", "latin-1", "iso8859-1", "cp1252"}


def _build_cp1252_table() -> str:
    chars = []
    for i in range(256):
        try:
            chars.append(bytes([i]).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(chr(i))  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: as Latin-1 (C1 control)
    return "".join(chars)


_CP1252_TABLE = _build_cp1252_table()


def decode_cp1252(data: bytes) -> str:
    """windows-1252 where every byte maps (the five undefined ones as Latin-1)."""
    return codecs.charmap_decode(data, "strict", _CP1252_TABLE)[0]


@functools.lru_cache(maxsize=256)
def normalize_charset(label: str | None) -> str | None:
    """The Python codec name for a charset label from a message, or None when the label is
    missing, a placeholder (``unknown-8bit``) or not a usable charset."""
    if label is None:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if "*" in name:  # RFC 2231 language suffix: utf-8*en
        name = name.split("*", 1)[0]
    if name in _UNDECLARED or len(name) > 64:
        return None
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return None
    return info.name


def detect_charset(data: bytes) -> str | None:
    """charset-normalizer's best guess for ``data`` (a bounded sample), or None."""
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:MAX_CHARSET_DETECT_BYTES]).best()
    except Exception:
        return None
    if best is None:
        return None
    return normalize_charset(best.encoding)


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


def _loose(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec, "replace")
    except (LookupError, ValueError, UnicodeError):
        return decode_cp1252(data)


def decode_text(data: bytes, charset: str | None) -> str:
    """Decode ``data`` labelled ``charset`` (may be None, wrong or unknown). Never raises."""
    if not data:
        return ""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace")
    codec = normalize_charset(charset)
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) and codec in (
        None,
        "utf-16",
        "utf-16-le",
        "utf-16-be",
    ):
        return _loose(data, "utf-16")
    if codec is None or codec in _LATIN_FAMILY:
        if data.isascii():
            return data.decode("ascii")
        text = _strict(data, "utf-8")
        if text is not None:
            return text
        if codec is not None:
            return decode_cp1252(data)
        guess = detect_charset(data)
        if guess is not None and guess not in _LATIN_FAMILY:
            return _loose(data, guess)
        return decode_cp1252(data)
    text = _strict(data, codec)
    if text is not None:
        return text
    if codec != "utf-8":
        text = _strict(data, "utf-8")
        if text is not None:
            return text
    guess = detect_charset(data)
    if guess is not None and guess != codec:
        return _loose(data, guess)
    return _loose(data, codec)


def decode_header_bytes(data: bytes, fallback_charset: str | None = None) -> str:
    """Raw 8-bit header bytes: ASCII, UTF-8, the message's declared charset, windows-1252."""
    if data.isascii():
        return data.decode("ascii")
    text = _strict(data, "utf-8")
    if text is not None:
        return text
    codec = normalize_charset(fallback_charset)
    if codec is not None and codec not in _LATIN_FAMILY and codec != "utf-8":
        text = _strict(data, codec)
        if text is not None:
            return text
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ch > "\x7f") - bad
    if good >= 2 * bad:  # UTF-8 with a stray or truncated sequence (cut by a length limit)
        return text
    return decode_cp1252(data)


def decode_declared(data: bytes, charset: str | None) -> str:
    """Short labelled text (an RFC 2047 word, an RFC 2231 value): the label is trusted, no
    guessing; bytes that do not fit it are replaced."""
    codec = normalize_charset(charset)
    if codec is None:
        return decode_header_bytes(data)
    if codec in _LATIN_FAMILY:
        return decode_header_bytes(data)
    text = _strict(data, codec)
    if text is not None:
        return text
    if codec != "utf-8":
        text = _strict(data, "utf-8")
        if text is not None:
            return text
    return _loose(data, codec)
