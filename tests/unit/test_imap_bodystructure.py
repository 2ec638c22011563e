"""BODYSTRUCTURE → typed part tree, with part numbers, across server variants."""

from __future__ import annotations

from mailgate.protocols.imap import BodyStructure, FetchResponse, ResponseParser


def structure(data: bytes) -> BodyStructure:
    (r,) = ResponseParser().feed(b"* 1 FETCH (BODYSTRUCTURE " + data + b")\r\n")
    assert isinstance(r, FetchResponse)
    bs = r.bodystructure
    assert bs is not None
    return bs


def test_single_text_part() -> None:
    bs = structure(b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)')
    assert (bs.part, bs.content_type, bs.params, bs.encoding, bs.size, bs.lines) == (
        "1",
        "text/plain",
        {"charset": "US-ASCII"},
        "7bit",
        3028,
        92,
    )
    assert bs.disposition is None and bs.children == ()


def test_nested_multipart_with_extension_data() -> None:
    bs = structure(
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 12 1 NIL NIL NIL NIL)'
        b'(("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "BASE64" 40 1 NIL NIL NIL NIL)'
        b'("IMAGE" "PNG" ("NAME" "a.png") "<cid1@x>" "logo" "BASE64" 100 NIL ("INLINE" ("FILENAME" "a.png")) NIL "http://x/a.png")'
        b' "RELATED" ("BOUNDARY" "b2" "TYPE" "text/html") NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=") NIL NIL "BASE64" 5000 "md5sum" ("ATTACHMENT" ("FILENAME" "cv.pdf" "SIZE" "5000")) ("EN" "DE") NIL)'
        b' "MIXED" ("BOUNDARY" "b1") ("INLINE" NIL) "EN" NIL)'
    )
    assert bs.part == "TEXT" and bs.content_type == "multipart/mixed"
    assert bs.params == {"boundary": "b1"} and bs.language == ("EN",)
    text, related, pdf = bs.children
    assert text.part == "1" and text.encoding == "quoted-printable"
    assert related.part == "2" and related.subtype == "related"
    html, img = related.children
    assert (html.part, img.part) == ("2.1", "2.2")
    assert img.id == "<cid1@x>" and img.description == "logo" and img.lines is None
    assert img.disposition == "inline" and img.filename == "a.png"
    assert img.location == "http://x/a.png"
    assert pdf.part == "3" and pdf.md5 == "md5sum" and pdf.disposition == "attachment"
    assert pdf.disposition_params == {"filename": "cv.pdf", "size": "5000"}
    assert pdf.language == ("EN", "DE")
    assert [p.part for p in bs.walk()] == ["TEXT", "1", "2", "2.1", "2.2", "3"]


def test_message_rfc822_inside() -> None:
    bs = structure(
        b'(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 10 1)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 500 '
        b'("Mon, 1 Jan 2024 00:00:00 +0000" "inner" (("A" NIL "a" "x.org")) NIL NIL NIL NIL NIL NIL "<i@x>") '
        b'(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1)("TEXT" "HTML" NIL NIL NIL "7BIT" 9 1) "ALTERNATIVE") 20)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 50 (NIL "x" NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1) 3)'
        b' "MIXED")'
    )
    _, msg, msg2 = bs.children
    assert msg.part == "2" and msg.content_type == "message/rfc822" and msg.lines == 20
    assert msg.envelope is not None and msg.envelope.subject == "inner"
    assert msg.body is not None and msg.body.part == "2.TEXT"
    assert [c.part for c in msg.body.children] == ["2.1", "2.2"]
    assert msg2.body is not None and msg2.body.part == "2.1".replace("2", "3")
    assert [p.part for p in bs.walk()] == ["TEXT", "1", "2", "2.TEXT", "2.1", "2.2", "3", "3.1"]


def test_odd_variants() -> None:
    # disposition as a bare string, size as a string, no lines, lower-case, NIL params
    bs = structure(b'("text" "plain" NIL NIL NIL "8bit" "42" NIL NIL "attachment")')
    assert bs.size == 42 and bs.lines is None and bs.disposition == "attachment"
    # missing fields altogether
    bs = structure(b'("APPLICATION" "OCTET-STREAM")')
    assert bs.content_type == "application/octet-stream" and bs.size is None
    # multipart without children (seen from broken servers)
    bs = structure(b'("MIXED")')
    assert bs.content_type in ("multipart/mixed", "text/plain")
    # params with odd count and a nested list inside
    bs = structure(b'("TEXT" "PLAIN" ("CHARSET" "utf-8" "FORMAT") NIL NIL "7BIT" 1 1)')
    assert bs.params == {"charset": "utf-8"}
    # message/rfc822 without envelope/body (lazy server)
    bs = structure(b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 10)')
    assert bs.body is None and bs.envelope is None


def test_body_non_extensible_form() -> None:
    (r,) = ResponseParser().feed(
        b'* 1 FETCH (BODY (("TEXT" "PLAIN" NIL NIL NIL "7BIT" 1 1)("TEXT" "HTML" NIL NIL NIL "7BIT" 1 1) "ALTERNATIVE"))\r\n'
    )
    assert isinstance(r, FetchResponse)
    assert r.bodystructure is not None and r.bodystructure.subtype == "alternative"
