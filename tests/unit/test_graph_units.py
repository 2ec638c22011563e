"""Pure parts of the Graph backend: failure rules, search compilation, summaries, ids."""

from __future__ import annotations

import pytest

from mailgate.backends.base import FlagChanges, MessageChanges
from mailgate.backends.graph.client import Retry, classify, map_error, retry_after
from mailgate.backends.graph.folders import split_path
from mailgate.backends.graph.messages import (
    GraphMessages,
    decode_cursor,
    encode_cursor,
    match_attachments,
)
from mailgate.backends.graph.summary import (
    decode_state,
    split_attachment_id,
    split_text_id,
    state_of,
    summarize,
    text_id,
)
from mailgate.domain.sync import change_set
from mailgate.errors import (
    AuthenticationError,
    BadRequest,
    CommandError,
    Conflict,
    ConnectError,
    CursorExpired,
    Forbidden,
    NotFound,
)
from mailgate.protocols.graph_query import EPOCH_FLOOR, compile_query


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, Retry.PERMANENT), (401, Retry.PERMANENT), (403, Retry.PERMANENT),
     (404, Retry.PERMANENT), (408, Retry.TRANSIENT), (409, Retry.PERMANENT),
     (410, Retry.PERMANENT), (429, Retry.TRANSIENT), (500, Retry.TRANSIENT),
     (503, Retry.TRANSIENT), (504, Retry.TRANSIENT)],
)  # fmt: skip
def test_classify(status: int, kind: Retry) -> None:
    assert classify(status) is kind


def test_retry_after_honoured_and_capped() -> None:
    assert retry_after({"retry-after": "7"}, 0) == 7.0
    assert retry_after({"retry-after": "100000"}, 0) == 120.0
    assert 0 < retry_after({}, 3) <= 16.0


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, BadRequest), (401, AuthenticationError), (403, Forbidden), (404, NotFound),
     (409, Conflict), (410, CursorExpired), (422, CommandError), (503, ConnectError)],
)  # fmt: skip
def test_map_error(status: int, error: type[Exception]) -> None:
    assert isinstance(map_error(status, "X", "msg", not_found="MessageNotFound"), error)


def test_not_found_code() -> None:
    err = map_error(404, "ErrorItemNotFound", "nope", not_found="MessageNotFound")
    assert isinstance(err, NotFound) and err.code == "MessageNotFound"


def test_filter_only_starts_with_received() -> None:
    q = compile_query({"unseen": True, "since": "2024-01-02"})
    assert q.search is None
    assert q.filter == "receivedDateTime ge 2024-01-02T00:00:00Z and isRead eq false"
    q = compile_query({"flagged": True})
    assert q.filter == f"receivedDateTime ge {EPOCH_FLOOR} and flag/flagStatus eq 'flagged'"
    assert q.params()["$orderby"] == "receivedDateTime desc"


def test_text_terms_use_kql_never_with_filter() -> None:
    q = compile_query({"to": "bob@example.com", "cc": "carol", "since": "2024-01-02", "seen": True})
    assert q.filter is None and q.search is not None
    assert "to:bob@example.com" in q.search and "cc:carol" in q.search
    assert "received>=2024-01-02" in q.search
    params = q.params()
    assert "$filter" not in params and "$orderby" not in params
    assert q.matches({"isRead": True}) and not q.matches({"isRead": False})


def test_phrases_and_quotes() -> None:
    q = compile_query({"subject": 'say "hi" there'})
    assert q.search == 'subject:"say hi there"'


def test_thread_is_everywhere() -> None:
    q = compile_query({"threadId": "AAQkAGI="})
    assert q.everywhere and q.filter is not None and "conversationId eq 'AAQkAGI='" in q.filter


def test_labels() -> None:
    q = compile_query({"labels": {"has": ["Red"], "not": ["O'Brien"]}})
    assert q.filter is not None
    assert "categories/any(c:c eq 'Red')" in q.filter
    assert "not(categories/any(c:c eq 'O''Brien'))" in q.filter


@pytest.mark.parametrize(
    "search",
    [{"larger": 10}, {"smaller": 1}, {"header": {"x": "y"}}, {"answered": "yes"}, {"uid": "1:*"},
     {"deleted": True}, {"bogus": 1}, {"seen": "yes"}, {"since": "not a date"}, {"to": ""}],
)  # fmt: skip
def test_inexpressible_is_400(search: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        compile_query(search)


def test_ids() -> None:
    q = compile_query({"emailIds": ["AAA=", "BBB="], "unseen": True})
    assert q.ids == ["AAA=", "BBB="]


def test_summary_shape() -> None:
    row = {
        "id": "AAkAL=",
        "subject": "Hi",
        "from": {"emailAddress": {"name": "Bob", "address": "bob@x.test"}},
        "toRecipients": [{"emailAddress": {"name": "a@x.test", "address": "a@x.test"}}],
        "receivedDateTime": "2024-04-01T10:00:00Z",
        "isRead": False,
        "isDraft": False,
        "flag": {"flagStatus": "flagged"},
        "categories": ["Red"],
        "conversationId": "conv",
        "internetMessageId": "<m@x>",
        "attachments": [{"id": "att1", "name": "a.pdf", "contentType": "application/pdf",
                         "size": 5, "isInline": False}],
    }  # fmt: skip
    out = summarize(row, path="INBOX", special_use="\\Inbox")
    assert out["id"] == out["emailId"] == "AAkAL="
    assert out["threadId"] == "conv" and out["date"] == "2024-04-01T10:00:00.000Z"
    assert out["flags"] == ["\\Flagged"] and out["unseen"] is True and out["flagged"] is True
    assert out["labels"] == ["Red"] and out["to"] == [{"address": "a@x.test"}]
    assert out["from"] == {"address": "bob@x.test", "name": "Bob"}
    assert out["attachments"][0]["id"] == "AAkAL=.att1"
    assert out["text"]["id"] == text_id("AAkAL=")


def test_ids_round_trip_and_reject() -> None:
    assert split_attachment_id("AAkAL=.att1") == ("AAkAL=", "att1", None)
    assert split_attachment_id("AAkAL=~1.2") == ("AAkAL=", None, "1.2")
    assert split_text_id(text_id("AAkAL=")) == "AAkAL="
    for bad in ("", "../x", "a/b.c", "x~0", "x~1..2"):
        with pytest.raises(NotFound):
            split_attachment_id(bad)


def test_state_and_changes() -> None:
    state = state_of({"isRead": True, "categories": ["A", "B"]})
    assert decode_state(state) == (["\\Seen"], ["A", "B"])
    assert change_set(["\\Seen"], ["\\Flagged"]) == {
        "added": ["\\Flagged"],
        "deleted": ["\\Seen"],
        "value": ["\\Flagged"],
    }


def test_patch_for_flags_and_labels() -> None:
    body = GraphMessages.patch_for(
        MessageChanges(
            flags=FlagChanges(add=("\\Seen",), delete=("\\Flagged",)),
            labels=FlagChanges(add=("Red",), delete=("Blue",)),
        ),
        {"categories": ["Blue", "Green"]},
    )
    assert body == {
        "isRead": True,
        "flag": {"flagStatus": "notFlagged"},
        "categories": ["Green", "Red"],
    }
    body = GraphMessages.patch_for(MessageChanges(flags=FlagChanges(set=("\\Flagged",))), None)
    assert body == {"isRead": False, "flag": {"flagStatus": "flagged"}}


def test_cursor_round_trip() -> None:
    cur = encode_cursor({"p": 2, "l": "/me/messages?$skip=40"})
    assert decode_cursor(cur) == {"p": 2, "l": "/me/messages?$skip=40"}
    with pytest.raises(BadRequest):
        decode_cursor("imap_xyz")


def test_split_path() -> None:
    assert split_path("inbox/a/b") == ["INBOX", "a", "b"]
    assert split_path(["A", "B"]) == ["A", "B"]


class _Att:
    def __init__(self, part: str, filename: str | None, content_id: str | None = None) -> None:
        self.part, self.filename, self.content_id = part, filename, content_id


def test_match_attachments() -> None:
    graph = [{"id": "g1", "name": "b.png", "contentId": "img1"}, {"id": "g2", "name": "a.pdf"}]
    got = match_attachments("M", [_Att("2", "a.pdf"), _Att("3", None, "img1")], graph)
    assert got == {"2": "M.g2", "3": "M.g1"}


# -- notifyText / notifyHeaders for messageNew ---------------------------------------------------


def _rich_mime() -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = "Hello"
    msg["X-Tracking"] = "a    b"
    msg["Received"] = "one"
    msg.set_content("plain body text\n")
    msg.add_alternative("<p>html</p>\n", subtype="html")
    return msg.as_bytes()


def test_select_headers_like_imap() -> None:
    from mailgate.backends.graph.sync import graph_headers, select_headers

    pairs = [("Subject", "Hi"), ("Received", "a"), ("received", "b  c"), ("X-Other", "x")]
    assert select_headers(pairs, ("received",)) == {"received": ["a", "b c"]}
    assert select_headers(pairs, ("*",))["x-other"] == ["x"]
    assert graph_headers(
        [{"name": "Subject", "value": "Hi"}, {"value": "nameless"}, "junk"], ("subject",)
    ) == {"subject": ["Hi"]}
    assert graph_headers(None, ("subject",)) == {}


def test_mime_extras_text_and_headers() -> None:
    from mailgate.backends.graph.sync import add_mime_extras

    data: dict[str, object] = {"text": {"id": "m~text"}}
    add_mime_extras(data, _rich_mime(), ("subject", "x-tracking"), 5)
    assert data["headers"] == {"subject": ["Hello"], "x-tracking": ["a b"]}
    assert data["text"] == {"id": "m~text", "plain": "plain", "html": "<p>ht", "hasMore": True}
    whole: dict[str, object] = {"text": {"id": "m~text"}}
    add_mime_extras(whole, _rich_mime(), (), None)
    assert "headers" not in whole
    assert whole["text"] == {
        "id": "m~text",
        "plain": "plain body text\n",
        "html": "<p>html</p>\n",
        "hasMore": False,
    }
    # an HTML-only message gets no generated plain text (as on IMAP)
    html_only = b"X-T: a\r\n  b\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n"
    only: dict[str, object] = {"text": {"id": "m~text"}}
    add_mime_extras(only, html_only, ("x-t",), None)
    assert only["headers"] == {"x-t": ["a b"]}  # unfolded
    assert set(only["text"]) == {"id", "html", "hasMore"}  # type: ignore[arg-type]
