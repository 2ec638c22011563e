"""Reply and forward threading rules (pure)."""

from __future__ import annotations

import pytest

from mailgate.protocols.mime import Address
from mailgate.services.sending.builder import Addr
from mailgate.services.sending.references import (
    Original,
    combine_html,
    combine_text,
    parse_original,
    prefixed_subject,
    reply_recipients,
    thread_headers,
)

HEADERS = (
    b"Message-ID: <orig@x.org>\r\n"
    b"References: <root@x.org> <mid@x.org>\r\n"
    b"In-Reply-To: <mid@x.org>\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9?=\r\n"
    b"From: Origin <origin@x.org>\r\n"
    b"To: me@example.com, other@x.org\r\n"
    b"Cc: Carl <carl@x.org>, ME@example.com\r\n"
    b"Reply-To: list@x.org\r\n"
)


@pytest.mark.parametrize(
    ("subject", "action", "expected"),
    [
        ("Hello", "reply", "Re: Hello"),
        ("Re: Hello", "reply", "Re: Hello"),
        ("RE: Hello", "reply-all", "RE: Hello"),
        ("Aw: Hallo", "reply", "Aw: Hallo"),
        ("Re[2]: Hello", "reply", "Re[2]: Hello"),
        ("Fwd: Hello", "reply", "Re: Fwd: Hello"),
        ("Hello", "forward", "Fwd: Hello"),
        ("Fwd: Hello", "forward", "Fwd: Hello"),
        ("FW: Hello", "forward", "FW: Hello"),
        ("Re: Hello", "forward", "Fwd: Re: Hello"),
        (None, "reply", "Re:"),
        ("Regarding", "reply", "Re: Regarding"),
    ],
)
def test_prefix_once(subject: str | None, action: str, expected: str) -> None:
    assert prefixed_subject(subject, action) == expected


def test_parse_original_from_header_fields() -> None:
    orig = parse_original(HEADERS)
    assert orig.message_id == "<orig@x.org>"
    assert orig.references == ["<root@x.org>", "<mid@x.org>"]
    assert orig.subject == "Café"
    assert orig.from_ == Address("Origin", "origin@x.org")
    assert [a.address for a in orig.reply_to] == ["list@x.org"]


@pytest.mark.parametrize(
    ("original", "action", "in_reply_to", "refs"),
    [
        (
            Original(message_id="<o@x>", references=["<r@x>", "<m@x>"]),
            "reply",
            "<o@x>",
            ["<r@x>", "<m@x>", "<o@x>"],
        ),
        (
            Original(message_id="<o@x>", in_reply_to="<p@x>"),
            "reply-all",
            "<o@x>",
            ["<p@x>", "<o@x>"],
        ),
        (Original(message_id="<o@x>"), "forward", None, ["<o@x>"]),
        (Original(message_id="<o@x>", references=["<o@x>"]), "reply", "<o@x>", ["<o@x>"]),
        (Original(), "reply", None, []),
    ],
)
def test_thread_headers(
    original: Original, action: str, in_reply_to: str | None, refs: list[str]
) -> None:
    assert thread_headers(original, action) == (in_reply_to, refs)


def test_reply_goes_to_reply_to_else_from() -> None:
    orig = parse_original(HEADERS)
    assert reply_recipients(orig, "reply", ["me@example.com"]) == ([Addr("list@x.org")], [])
    orig.reply_to = []
    assert reply_recipients(orig, "reply", ["me@example.com"]) == (
        [Addr("origin@x.org", "Origin")],
        [],
    )


def test_reply_all_drops_own_addresses_and_duplicates() -> None:
    orig = parse_original(HEADERS)
    orig.reply_to = []
    to, cc = reply_recipients(orig, "reply-all", ["me@example.com"])
    assert to == [Addr("origin@x.org", "Origin")]
    assert cc == [Addr("other@x.org"), Addr("carl@x.org", "Carl")]


def test_replying_to_own_message_goes_to_its_recipients() -> None:
    orig = Original(
        from_=Address("", "me@example.com"), to=[Address("", "friend@x.org")], message_id="<a@b>"
    )
    to, _ = reply_recipients(orig, "reply", ["me@example.com"])
    assert to == [Addr("friend@x.org")]


def test_inline_quotes() -> None:
    orig = Original(
        from_=Address("Origin", "origin@x.org"),
        date="Tue, 24 Nov 2026 10:00:00 +0000",
        subject="S",
        text="line 1\n\nline <3>",
    )
    quoted = combine_text("my answer", orig, "reply")
    assert quoted.startswith("my answer\n\nOn Tue, 24 Nov 2026 10:00:00 +0000, Origin")
    assert quoted.endswith("> line 1\n>\n> line <3>")
    html = combine_html("<p>mine</p>", orig, "reply")
    assert "<blockquote" in html and "line &lt;3&gt;" in html
    fwd = combine_text("fyi", orig, "forward")
    assert "---------- Forwarded message ---------" in fwd and fwd.endswith("line <3>")
