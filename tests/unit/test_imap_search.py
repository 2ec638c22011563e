"""EmailEngine search object → IMAP SEARCH criteria: exact token lists and every error case."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgate.errors import BadRequest
from mailgate.protocols.imap.search import (
    MAX_EMAIL_IDS,
    MAX_HEADERS,
    MAX_LABELS,
    SEARCH_FIELDS,
    SearchPlan,
    compile_search,
)

NONE: frozenset[str] = frozenset()
OBJECTID = frozenset({"IMAP4rev1", "OBJECTID", "CONDSTORE"})
GMAIL = frozenset({"IMAP4rev1", "X-GM-EXT-1"})
ALL_CAPS = OBJECTID | GMAIL

CONTRACT_FIELDS = {  # SearchQuery.properties in the EmailEngine OpenAPI contract
    "seq",
    "answered",
    "deleted",
    "draft",
    "unseen",
    "flagged",
    "seen",
    "from",
    "to",
    "cc",
    "bcc",
    "body",
    "subject",
    "larger",
    "smaller",
    "uid",
    "modseq",
    "before",
    "since",
    "sentBefore",
    "sentSince",
    "emailId",
    "threadId",
    "header",
    "gmailRaw",
    "labels",
    "emailIds",
}


def test_every_contract_field_is_known() -> None:
    assert SEARCH_FIELDS == CONTRACT_FIELDS


# -- input → exact criteria ------------------------------------------------------------------

CASES: list[tuple[str, dict[str, Any], frozenset[str], list[str | bytes]]] = [
    ("empty", {}, NONE, ["ALL"]),
    ("nulls are absent", {"from": None, "unseen": None, "header": None}, NONE, ["ALL"]),
    ("seq", {"seq": "1:10"}, NONE, ["1:10"]),
    ("seq list", {"seq": "1,3,5:*"}, NONE, ["1,3,5:*"]),
    ("seq star", {"seq": "*"}, NONE, ["*"]),
    ("uid", {"uid": "100:200"}, NONE, ["UID", "100:200"]),
    ("uid list", {"uid": "150,200,250"}, NONE, ["UID", "150,200,250"]),
    ("uid max", {"uid": "4294967295"}, NONE, ["UID", "4294967295"]),
    ("answered", {"answered": True}, NONE, ["ANSWERED"]),
    ("unanswered", {"answered": False}, NONE, ["UNANSWERED"]),
    ("deleted", {"deleted": True}, NONE, ["DELETED"]),
    ("undeleted", {"deleted": False}, NONE, ["UNDELETED"]),
    ("draft", {"draft": True}, NONE, ["DRAFT"]),
    ("undraft", {"draft": False}, NONE, ["UNDRAFT"]),
    ("unseen", {"unseen": True}, NONE, ["UNSEEN"]),
    ("not unseen", {"unseen": False}, NONE, ["SEEN"]),
    ("flagged", {"flagged": True}, NONE, ["FLAGGED"]),
    ("unflagged", {"flagged": False}, NONE, ["UNFLAGGED"]),
    ("seen", {"seen": True}, NONE, ["SEEN"]),
    ("not seen", {"seen": False}, NONE, ["UNSEEN"]),
    ("from", {"from": "nyan.cat@example.com"}, NONE, ["FROM", '"nyan.cat@example.com"']),
    ("to", {"to": "support@example.com"}, NONE, ["TO", '"support@example.com"']),
    ("cc", {"cc": "billing@example.com"}, NONE, ["CC", '"billing@example.com"']),
    ("bcc", {"bcc": "archive@example.com"}, NONE, ["BCC", '"archive@example.com"']),
    ("body", {"body": "Hello world"}, NONE, ["BODY", '"Hello world"']),
    ("subject", {"subject": "Hello world"}, NONE, ["SUBJECT", '"Hello world"']),
    ("quotes escaped", {"subject": 'say "hi" \\o/'}, NONE, ["SUBJECT", '"say \\"hi\\" \\\\o/"']),
    ("larger", {"larger": 1048576}, NONE, ["LARGER", "1048576"]),
    ("smaller", {"smaller": 0}, NONE, ["SMALLER", "0"]),
    ("larger max", {"larger": 1073741824}, NONE, ["LARGER", "1073741824"]),
    ("before", {"before": "2024-08-09"}, NONE, ["BEFORE", "9-Aug-2024"]),
    ("since", {"since": "2022-08-09"}, NONE, ["SINCE", "9-Aug-2022"]),
    ("sentBefore", {"sentBefore": "2024-02-01"}, NONE, ["SENTBEFORE", "1-Feb-2024"]),
    ("sentSince", {"sentSince": "2024-12-31"}, NONE, ["SENTSINCE", "31-Dec-2024"]),
    ("datetime Z", {"since": "2024-02-01T10:00:00Z"}, NONE, ["SINCE", "1-Feb-2024"]),
    ("datetime ms", {"since": "2024-02-01T10:00:00.123+00:00"}, NONE, ["SINCE", "1-Feb-2024"]),
    ("aware → UTC", {"since": "2024-02-01T23:30:00-05:00"}, NONE, ["SINCE", "2-Feb-2024"]),
    ("aware → UTC back", {"before": "2024-03-01T01:00:00+02:00"}, NONE, ["BEFORE", "29-Feb-2024"]),
    ("naive datetime", {"since": "2024-02-01T23:30:00"}, NONE, ["SINCE", "1-Feb-2024"]),
    ("epoch ms", {"since": 1706745600000}, NONE, ["SINCE", "1-Feb-2024"]),
    ("epoch ms float", {"before": 1706745600000.5}, NONE, ["BEFORE", "1-Feb-2024"]),
    ("epoch 0", {"before": 0}, NONE, ["BEFORE", "1-Jan-1970"]),
    ("year padded", {"since": "0999-05-04"}, NONE, ["SINCE", "4-May-0999"]),
    ("emailId objectid", {"emailId": "M6d99ac3275bb"}, OBJECTID, ["EMAILID", "M6d99ac3275bb"]),
    (
        "emailId gmail",
        {"emailId": "1278455344230334865"},
        GMAIL,
        ["X-GM-MSGID", "1278455344230334865"],
    ),
    ("emailId prefers objectid", {"emailId": "123"}, ALL_CAPS, ["EMAILID", "123"]),
    (
        "threadId objectid",
        {"threadId": "T64b478a75b7ea9"},
        OBJECTID,
        ["THREADID", "T64b478a75b7ea9"],
    ),
    (
        "threadId gmail",
        {"threadId": "1266894439832287888"},
        GMAIL,
        ["X-GM-THRID", "1266894439832287888"],
    ),
    ("caps case-insensitive", {"emailId": "a-b_c"}, frozenset({"objectid"}), ["EMAILID", "a-b_c"]),
    (
        "header value",
        {"header": {"Message-ID": "<12345@example.com>"}},
        NONE,
        ["HEADER", '"Message-ID"', '"<12345@example.com>"'],
    ),
    (
        "header presence/absence",
        {"header": {"List-ID": "x", "X-Flag": True, "X-Spam": False, "X-Empty": ""}},
        NONE,
        [
            "HEADER",
            '"List-ID"',
            '"x"',
            "HEADER",
            '"X-Flag"',
            '""',
            "NOT",
            "HEADER",
            '"X-Spam"',
            '""',
            "HEADER",
            '"X-Empty"',
            '""',
        ],
    ),
    ("header odd name", {"header": {'X-"q"\\': "v"}}, NONE, ["HEADER", '"X-\\"q\\"\\\\"', '"v"']),
    ("header empty object", {"header": {}}, NONE, ["ALL"]),
    ("header null value skipped", {"header": {"X-A": None}}, NONE, ["ALL"]),
    ("modseq", {"modseq": 12345}, OBJECTID, ["MODSEQ", "12345"]),
    ("modseq qresync", {"modseq": 0}, frozenset({"QRESYNC"}), ["MODSEQ", "0"]),
    (
        "gmailRaw",
        {"gmailRaw": "has:attachment in:unread"},
        GMAIL,
        ["X-GM-RAW", '"has:attachment in:unread"'],
    ),
    (
        "labels",
        {"labels": {"has": ["Important", "\\Starred"], "not": ["Horizon"]}},
        GMAIL,
        [
            "X-GM-LABELS",
            '"Important"',
            "X-GM-LABELS",
            '"\\\\Starred"',
            "NOT",
            "X-GM-LABELS",
            '"Horizon"',
        ],
    ),
    ("labels utf7", {"labels": {"has": ["Über&"]}}, GMAIL, ["X-GM-LABELS", '"&ANw-ber&-"']),
    ("labels empty lists", {"labels": {"has": [], "not": []}}, NONE, ["ALL"]),
    ("emailIds one", {"emailIds": ["a"]}, OBJECTID, ["EMAILID", "a"]),
    ("emailIds two", {"emailIds": ["a", "b"]}, OBJECTID, ["OR", "EMAILID", "a", "EMAILID", "b"]),
    (
        "emailIds balanced",
        {"emailIds": ["a", "b", "c", "d", "e"]},
        OBJECTID,
        [
            "OR",
            "OR",
            "EMAILID",
            "a",
            "EMAILID",
            "b",
            "OR",
            "EMAILID",
            "c",
            "OR",
            "EMAILID",
            "d",
            "EMAILID",
            "e",
        ],
    ),
    (
        "emailIds gmail, deduplicated after normalising",
        {"emailIds": ["12", "012", "13"]},
        GMAIL,
        ["OR", "X-GM-MSGID", "12", "X-GM-MSGID", "13"],
    ),
    (
        "emailIds ignore every other field",
        {"emailIds": ["a"], "unseen": True, "seq": "not checked", "modseq": "x"},
        OBJECTID,
        ["EMAILID", "a"],
    ),
    ("emailIds empty matches nothing", {"emailIds": []}, NONE, ["NOT", "ALL"]),
    (
        "contract example (Gmail IMAP)",
        {
            "unseen": True,
            "flagged": True,
            "from": "nyan.cat@example.com",
            "body": "Hello world",
            "subject": "Hello world",
            "sentBefore": "2024-08-09",
            "sentSince": "2022-08-09",
            "emailId": "1278455344230334865",
            "threadId": "1266894439832287888",
            "header": {"Message-ID": "<12345@example.com>"},
            "gmailRaw": "has:attachment in:unread",
            "labels": {"has": ["Important"], "not": ["Horizon"]},
        },
        GMAIL,
        [
            "UNSEEN",
            "FLAGGED",
            "FROM",
            '"nyan.cat@example.com"',
            "BODY",
            '"Hello world"',
            "SUBJECT",
            '"Hello world"',
            "SENTBEFORE",
            "9-Aug-2024",
            "SENTSINCE",
            "9-Aug-2022",
            "X-GM-MSGID",
            "1278455344230334865",
            "X-GM-THRID",
            "1266894439832287888",
            "HEADER",
            '"Message-ID"',
            '"<12345@example.com>"',
            "X-GM-RAW",
            '"has:attachment in:unread"',
            "X-GM-LABELS",
            '"Important"',
            "NOT",
            "X-GM-LABELS",
            '"Horizon"',
        ],
    ),
    (
        "fixed order whatever the JSON order",
        {"modseq": 1, "uid": "1:*", "subject": "s", "seen": False, "seq": "2", "larger": 5},
        OBJECTID,
        ["2", "UNSEEN", "SUBJECT", '"s"', "LARGER", "5", "UID", "1:*", "MODSEQ", "1"],
    ),
]


@pytest.mark.parametrize(
    ("query", "caps", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_compile(query: dict[str, Any], caps: frozenset[str], expected: list[str | bytes]) -> None:
    plan = compile_search(query, capabilities=caps)
    assert plan == SearchPlan(criteria=expected, charset=None)


# -- literals and charset --------------------------------------------------------------------

LITERAL_CASES: list[tuple[dict[str, Any], frozenset[str], list[str | bytes], str | None]] = [
    ({"subject": "héllo"}, NONE, ["SUBJECT", "héllo".encode()], "UTF-8"),
    ({"from": "Jürgen"}, NONE, ["FROM", "Jürgen".encode()], "UTF-8"),
    ({"body": "日本語"}, NONE, ["BODY", "日本語".encode()], "UTF-8"),
    ({"to": "😀@x"}, NONE, ["TO", "😀@x".encode()], "UTF-8"),
    ({"header": {"Subject": "Grüße"}}, NONE, ["HEADER", '"Subject"', "Grüße".encode()], "UTF-8"),
    ({"gmailRaw": "subject:café"}, GMAIL, ["X-GM-RAW", b"subject:caf\xc3\xa9"], "UTF-8"),
    # ASCII with controls: a literal, but no CHARSET needed
    ({"subject": "a\r\nb"}, NONE, ["SUBJECT", b"a\r\nb"], None),
    ({"body": "tab\there"}, NONE, ["BODY", b"tab\there"], None),
    ({"subject": "x\x7f"}, NONE, ["SUBJECT", b"x\x7f"], None),
    # longer than MAX_QUOTED_LENGTH
    ({"subject": "a" * 1001}, NONE, ["SUBJECT", b"a" * 1001], None),
    ({"subject": "a" * 1000}, NONE, ["SUBJECT", '"' + "a" * 1000 + '"'], None),
    # mixed: one non-ASCII literal sets the charset for the whole command
    (
        {"from": "bob", "subject": "ñ"},
        NONE,
        ["FROM", '"bob"', "SUBJECT", "ñ".encode()],
        "UTF-8",
    ),
]


@pytest.mark.parametrize(("query", "caps", "expected", "charset"), LITERAL_CASES)
def test_literals(
    query: dict[str, Any], caps: frozenset[str], expected: list[str | bytes], charset: str | None
) -> None:
    assert compile_search(query, capabilities=caps) == SearchPlan(expected, charset)


# -- errors: BadRequest naming the field -----------------------------------------------------

ERRORS: list[tuple[Any, frozenset[str], str]] = [
    ({"unknown": 1}, NONE, "unknown"),
    ({"or": [{"seen": True}]}, NONE, "or"),
    ({"keyword": "$Forwarded"}, NONE, "keyword"),
    ({"seq": ""}, NONE, "seq"),
    ({"seq": "0"}, NONE, "seq"),
    ({"seq": "1:"}, NONE, "seq"),
    ({"seq": ":5"}, NONE, "seq"),
    ({"seq": "1,,2"}, NONE, "seq"),
    ({"seq": "1 2"}, NONE, "seq"),
    ({"seq": "01"}, NONE, "seq"),
    ({"seq": "4294967296"}, NONE, "seq"),
    ({"seq": "1:2:3"}, NONE, "seq"),
    ({"seq": "１"}, NONE, "seq"),  # fullwidth digit
    ({"seq": "1," * 5000 + "1"}, NONE, "seq"),
    ({"seq": 5}, NONE, "seq"),
    ({"uid": "1:x"}, NONE, "uid"),
    ({"uid": "1,"}, NONE, "uid"),
    ({"uid": ["1"]}, NONE, "uid"),
    ({"unseen": "true"}, NONE, "unseen"),
    ({"seen": 1}, NONE, "seen"),
    ({"answered": 0}, NONE, "answered"),
    ({"deleted": "yes"}, NONE, "deleted"),
    ({"draft": []}, NONE, "draft"),
    ({"flagged": {}}, NONE, "flagged"),
    ({"from": 5}, NONE, "from"),
    ({"from": ""}, NONE, "from"),
    ({"to": "x" * 257}, NONE, "to"),
    ({"cc": ["a"]}, NONE, "cc"),
    ({"bcc": True}, NONE, "bcc"),
    ({"body": "nul\x00"}, NONE, "body"),
    ({"subject": "x" * 2561}, NONE, "subject"),
    ({"subject": "\ud800"}, NONE, "subject"),  # lone surrogate
    ({"larger": -1}, NONE, "larger"),
    ({"larger": 1073741825}, NONE, "larger"),
    ({"larger": "10"}, NONE, "larger"),
    ({"smaller": 1.5}, NONE, "smaller"),
    ({"smaller": True}, NONE, "smaller"),
    ({"before": "yesterday"}, NONE, "before"),
    ({"before": "2024-02-30"}, NONE, "before"),
    ({"since": "2024-13-01"}, NONE, "since"),
    ({"since": ""}, NONE, "since"),
    ({"since": True}, NONE, "since"),
    ({"since": [2024]}, NONE, "since"),
    ({"sentBefore": float("nan")}, NONE, "sentBefore"),
    ({"sentSince": float("inf")}, NONE, "sentSince"),
    ({"sentSince": 10**30}, NONE, "sentSince"),
    ({"sentSince": -(10**20)}, NONE, "sentSince"),
    ({"since": "2024-02-01" + "0" * 100}, NONE, "since"),
    ({"emailId": "123"}, NONE, "emailId"),
    ({"emailId": "has space"}, OBJECTID, "emailId"),
    ({"emailId": ""}, OBJECTID, "emailId"),
    ({"emailId": "x" * 257}, OBJECTID, "emailId"),
    ({"emailId": "abc"}, GMAIL, "emailId"),
    ({"emailId": str(2**64)}, GMAIL, "emailId"),
    ({"emailId": 123}, GMAIL, "emailId"),
    ({"threadId": "1"}, NONE, "threadId"),
    ({"threadId": "a b"}, OBJECTID, "threadId"),
    ({"threadId": "-1"}, GMAIL, "threadId"),
    ({"header": "Message-ID"}, NONE, "header"),
    ({"header": ["X"]}, NONE, "header"),
    ({"header": {"Bad:Name": "x"}}, NONE, "header"),
    ({"header": {"Bad Name": "x"}}, NONE, "header"),
    ({"header": {"": "x"}}, NONE, "header"),
    ({"header": {"Ünicode": "x"}}, NONE, "header"),
    ({"header": {"X": 5}}, NONE, "header"),
    ({"header": {"X": ["a"]}}, NONE, "header"),
    ({"header": {"X": "v\x00"}}, NONE, "header"),
    ({"header": {"X" * 257: "v"}}, NONE, "header"),
    ({"header": {"X": "v" * 2561}}, NONE, "header"),
    ({"header": {f"X-{i}": True for i in range(MAX_HEADERS + 1)}}, NONE, "header"),
    ({"modseq": 5}, NONE, "modseq"),
    ({"modseq": 5}, GMAIL, "modseq"),
    ({"modseq": -1}, OBJECTID, "modseq"),
    ({"modseq": 2**63}, OBJECTID, "modseq"),
    ({"modseq": "5"}, OBJECTID, "modseq"),
    ({"gmailRaw": "in:inbox"}, OBJECTID, "gmailRaw"),
    ({"gmailRaw": ""}, GMAIL, "gmailRaw"),
    ({"gmailRaw": "x" * 1025}, GMAIL, "gmailRaw"),
    ({"gmailRaw": 1}, GMAIL, "gmailRaw"),
    ({"labels": {"has": ["Important"]}}, NONE, "labels"),
    ({"labels": {"not": ["x"]}}, OBJECTID, "labels"),
    ({"labels": ["Important"]}, GMAIL, "labels"),
    ({"labels": {"has": "Important"}}, GMAIL, "labels"),
    ({"labels": {"has": [""]}}, GMAIL, "labels"),
    ({"labels": {"has": [1]}}, GMAIL, "labels"),
    ({"labels": {"any": ["x"]}}, GMAIL, "labels"),
    ({"labels": {"has": ["x" * 129]}}, GMAIL, "labels"),
    ({"labels": {"has": ["a\x00"]}}, GMAIL, "labels"),
    ({"labels": {"has": ["\udc00"]}}, GMAIL, "labels"),
    ({"labels": {"has": ["x"] * (MAX_LABELS + 1)}}, GMAIL, "labels"),
    ({"emailIds": "a"}, OBJECTID, "emailIds"),
    ({"emailIds": ["a"]}, NONE, "emailIds"),
    ({"emailIds": [1]}, OBJECTID, "emailIds"),
    ({"emailIds": ["a b"]}, OBJECTID, "emailIds"),
    ({"emailIds": ["x"]}, GMAIL, "emailIds"),
    ({"emailIds": ["a"] * (MAX_EMAIL_IDS + 1)}, OBJECTID, "emailIds"),
    ("not an object", NONE, "search"),
    (["seen"], NONE, "search"),
]


@pytest.mark.parametrize(
    ("query", "caps", "name"), ERRORS, ids=[f"{i}-{e[2]}" for i, e in enumerate(ERRORS)]
)
def test_errors(query: Any, caps: frozenset[str], name: str) -> None:
    with pytest.raises(BadRequest) as info:
        compile_search(query, capabilities=caps)
    err = info.value
    assert err.status_code == 400
    assert err.code == "InputValidationError"
    assert name in err.message
    assert err.details["key"] == name


# -- properties ------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from(["1:10", "1,3,5", "*", "2024-02-01", "2024-02-01T10:00:00Z", "123", "a-b"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(sorted(SEARCH_FIELDS)) | st.text(max_size=12)
queries = st.dictionaries(field_names, json_values, max_size=6)
capabilities = st.sets(
    st.sampled_from(["OBJECTID", "X-GM-EXT-1", "CONDSTORE", "QRESYNC", "IMAP4rev2"])
).map(frozenset)


def _check_plan(plan: SearchPlan) -> None:
    assert plan.criteria
    for token in plan.criteria:
        if isinstance(token, str):
            assert token
            assert token.isascii()
            assert not any(c in token for c in "\r\n\x00")
            if token.startswith('"'):
                assert token.endswith('"') and len(token) >= 2
            else:
                assert " " not in token
        else:
            assert b"\x00" not in token
    non_ascii = any(isinstance(t, bytes) and not t.isascii() for t in plan.criteria)
    assert plan.charset == ("UTF-8" if non_ascii else None)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(queries, capabilities)
def test_arbitrary_json_only_raises_bad_request(
    query: dict[str, Any], caps: frozenset[str]
) -> None:
    try:
        plan = compile_search(query, capabilities=caps)
    except BadRequest:
        return
    _check_plan(plan)


text_values = st.text(min_size=1, max_size=256).filter(lambda s: "\x00" not in s)


@settings(max_examples=300)
@given(st.sampled_from(["from", "to", "cc", "bcc", "body", "subject"]), text_values)
def test_any_text_is_searchable(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return
    plan = compile_search({name: value})
    _check_plan(plan)
    assert plan.criteria[0] == name.upper()
    token = plan.criteria[1]
    if isinstance(token, bytes):
        assert token.decode("utf-8") == value
    else:
        unquoted = re.sub(r"\\(.)", r"\1", token[1:-1])
        assert unquoted == value


@given(st.dates())
def test_any_date_renders(day: Any) -> None:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    plan = compile_search({"since": day.isoformat()})
    assert plan.criteria == ["SINCE", f"{day.day}-{months[day.month - 1]}-{day.year:04d}"]
