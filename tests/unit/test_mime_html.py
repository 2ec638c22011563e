"""HTML: sanitizing, cid: embedding, HTML -> text, text -> HTML."""

from __future__ import annotations

import pytest

from mailgate.protocols.mime import (
    find_cid_references,
    html_to_text,
    sanitize_html,
    text_to_html,
)


@pytest.mark.parametrize(
    ("html", "present", "absent"),
    [
        ("<p>Hello <b>world</b></p>", ["<p>Hello <b>world</b></p>"], []),
        ("<script>alert(1)</script><p>x</p>", ["<p>x</p>"], ["script", "alert"]),
        ('<img src="x" onerror="alert(1)">', ['<img src="x">'], ["onerror"]),
        ('<a href="javascript:alert(1)">x</a>', ["<a", ">x</a>"], ["javascript"]),
        (
            '<a href="https://example.com/">x</a>',
            ['href="https://example.com/"', 'rel="noopener noreferrer"', 'target="_blank"'],
            [],
        ),
        ('<a href="mailto:a@b.c">m</a>', ['href="mailto:a@b.c"'], []),
        ("<style>body{display:none}</style><p>x</p>", ["<p>x</p>"], ["display:none", "style>"]),
        (
            '<p style="color: red; position: fixed; top: 0">x</p>',
            ["color", "red"],
            ["position", "fixed"],
        ),
        (
            '<table bgcolor="#fff" cellpadding="2"><tr><td align="center">c</td></tr></table>',
            ['bgcolor="#fff"', 'cellpadding="2"', 'align="center"'],
            [],
        ),
        ('<img src="data:text/html;base64,PHNjcmlwdD4=">', ["<img"], ["data:"]),
        (
            '<iframe src="https://evil"></iframe><form><input></form>',
            [],
            ["iframe", "form", "input"],
        ),
        ("<!-- comment --><p>x</p>", ["<p>x</p>"], ["comment"]),
        ('<div class="x" id="y">d</div>', ["<div>d</div>"], ["class", "id="]),
        (
            '<font face="Arial" size="2" color="red">f</font>',
            ['face="Arial"', 'size="2"', 'color="red"'],
            [],
        ),
    ],
)
def test_sanitize_html(html: str, present: list[str], absent: list[str]) -> None:
    out = sanitize_html(html)
    for fragment in present:
        assert fragment in out
    for fragment in absent:
        assert fragment not in out


def test_sanitize_html_embeds_cid_images() -> None:
    html = '<p><img src="cid:logo@example.com" alt="logo"><img src="cid:missing@x"></p>'
    out = sanitize_html(html, embed_images={"<Logo@Example.com>": ("image/png", b"\x89PNG")})
    assert 'src="data:image/png;base64,iVBORw=="' in out
    assert 'src="cid:missing@x"' in out


def test_sanitize_html_cid_scheme_cannot_smuggle_data() -> None:
    html = '<a href="cid:logo">x</a><img src="cid:logo">'
    out = sanitize_html(html, embed_images={"logo": ('image/png"><script>', b"1")})
    assert "<script>" not in out
    assert '<a href="cid:logo"' in out  # only img src is replaced


def test_find_cid_references() -> None:
    html = """<img src="cid:a@x"><td style="background:url(cid:b%40x)"><img src='CID:C@X'>"""
    assert find_cid_references(html) == {"a@x", "b@x", "c@x"}


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Hello</p><p>World</p>", "Hello\n\nWorld"),
        ("<script>var x = 1;</script><div>Body</div>", "Body"),
        ("<style>p { color: red }</style><p>Text</p>", "Text"),
        ("<ul><li>one</li><li>two</li></ul>", "* one\n  * two"),
        ("", ""),
        ("<b>unclosed <i>tags", "unclosed tags"),
        ("&lt;escaped&gt; &amp; entities", "<escaped> & entities"),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    got = html_to_text(html)
    if "*" in expected:
        assert "one" in got and "two" in got
    else:
        assert got == expected


def test_html_to_text_deep_nesting() -> None:
    html = "<div>" * 5000 + "deep" + "</div>" * 5000
    assert "deep" in html_to_text(html)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello", "<p>Hello</p>"),
        ("a\nb", "<p>a<br>\nb</p>"),
        ("p1\n\np2", "<p>p1</p>\n<p>p2</p>"),
        ("<script>&", "<p>&lt;script&gt;&amp;</p>"),
        (
            "see https://example.com/a?b=1&c=2.",
            '<p>see <a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer" '
            'target="_blank">https://example.com/a?b=1&amp;c=2</a>.</p>',
        ),
        ("", ""),
    ],
)
def test_text_to_html(text: str, expected: str) -> None:
    assert text_to_html(text) == expected


def test_sanitize_html_very_deep_html_becomes_text() -> None:
    html = "<div>" * 100_000 + "<script>x()</script>deep &amp; dark"
    out = sanitize_html(html)
    assert out == "<p>deep &amp; dark</p>"


def test_html_to_text_big_table_is_bounded() -> None:
    html = "<table>" + "<tr><td>cell</td><td>x</td></tr>" * 20_000 + "</table>"
    text = html_to_text(html)
    assert text.count("cell") == 20_000
