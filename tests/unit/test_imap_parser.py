"""Table-driven tests of the sans-IO IMAP response parser (real server shapes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mailgate.errors import ProtocolError
from mailgate.protocols.imap import (
    AppendUid,
    CapabilityResponse,
    Continuation,
    CopyUid,
    EnabledResponse,
    EsearchResponse,
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    FlagsResponse,
    GenericResponse,
    IdResponse,
    ImapLimits,
    ListResponse,
    MailboxStatusResponse,
    NamespaceEntry,
    NamespaceResponse,
    RecentResponse,
    ResponseParser,
    SearchResponse,
    TaggedResponse,
    UntaggedStatus,
    VanishedResponse,
)


def parse_one(data: bytes, **kw: Any) -> Any:
    out = ResponseParser(**kw).feed(data)
    assert len(out) == 1, out
    return out[0]


STATUS_CASES = [
    (b"A1 OK LOGIN completed\r\n", TaggedResponse("A1", "OK", None, "LOGIN completed")),
    (b"a2 no [TRYCREATE] Mailbox doesn't exist\r\n", ("NO", "TRYCREATE", None)),
    (
        b"A3 BAD Error in IMAP command\r\n",
        TaggedResponse("A3", "BAD", None, "Error in IMAP command"),
    ),
    (b"A4 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n", ("OK", "READ-WRITE", None)),
    (
        b"A5 OK [APPENDUID 1700000000 7] Append completed.\r\n",
        ("OK", "APPENDUID", AppendUid(1700000000, (7,))),
    ),
    (
        b"A6 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
        ("OK", "COPYUID", CopyUid(38505, (304, 319, 320), (3956, 3957, 3958))),
    ),
    (
        b"A7 OK [COPYUID 9 5:3 10:12] Done\r\n",
        ("OK", "COPYUID", CopyUid(9, (3, 4, 5), (10, 11, 12))),
    ),
    (
        b"A8 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        ("NO", "AUTHENTICATIONFAILED", None),
    ),
    (b"A9 NO [ALREADYEXISTS] Mailbox already exists\r\n", ("NO", "ALREADYEXISTS", None)),
    (b"B1 NO [NONEXISTENT] Mailbox doesn't exist: x\r\n", ("NO", "NONEXISTENT", None)),
    (b"B2 OK [MODIFIED 7,9:10] Conditional STORE failed\r\n", ("OK", "MODIFIED", (7, 9, 10))),
    (
        b"B3 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n",
        ("OK", "CAPABILITY", frozenset({"IMAP4REV1", "IDLE"})),
    ),
    (b"B4 NO [BADCHARSET (US-ASCII UTF-8)] bad\r\n", ("NO", "BADCHARSET", ("US-ASCII", "UTF-8"))),
    (b"B5 OK [X-WEIRD-CODE some [thing] ok\r\n", ("OK", "X-WEIRD-CODE", None)),
    (b"B6 OK [CLOSED]\r\n", ("OK", "CLOSED", None)),
]


@pytest.mark.parametrize(("data", "expected"), STATUS_CASES)
def test_tagged(data: bytes, expected: Any) -> None:
    r = parse_one(data)
    assert isinstance(r, TaggedResponse)
    if isinstance(expected, TaggedResponse):
        assert r == expected
    else:
        status, code, value = expected
        assert r.status == status
        assert r.code is not None and r.code.name == code
        assert r.code.value == value


UNTAGGED_STATUS = [
    (b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n", "OK", "UIDVALIDITY", 3857529045),
    (b"* OK [UIDNEXT 4392] Predicted next UID\r\n", "OK", "UIDNEXT", 4392),
    (b"* OK [UNSEEN 12] Message 12 is first unseen\r\n", "OK", "UNSEEN", 12),
    (b"* OK [HIGHESTMODSEQ 715194045007]\r\n", "OK", "HIGHESTMODSEQ", 715194045007),
    (
        b"* OK [NOMODSEQ] Sorry, this mailbox format doesn't support modsequences\r\n",
        "OK",
        "NOMODSEQ",
        None,
    ),
    (
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded \\*)] Flags permitted.\r\n",
        "OK",
        "PERMANENTFLAGS",
        ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "$Forwarded", "\\*"),
    ),
    (b"* OK [READ-ONLY] EXAMINE\r\n", "OK", "READ-ONLY", None),
    (b"* OK [ALERT] System shutdown in 10 minutes\r\n", "OK", "ALERT", None),
    (b"* BYE Logging out\r\n", "BYE", None, None),
    (
        b"* PREAUTH [CAPABILITY IMAP4rev1] ready\r\n",
        "PREAUTH",
        "CAPABILITY",
        frozenset({"IMAP4REV1"}),
    ),
    (b"* NO [OVERQUOTA] Quota exceeded\r\n", "NO", "OVERQUOTA", None),
    (
        b"* OK [MAILBOXID (F2212ea87-6097-4256-9d51-71338625)] Ok\r\n",
        "OK",
        "MAILBOXID",
        "F2212ea87-6097-4256-9d51-71338625",
    ),
    (b"* OK Gimap ready for requests from 1.2.3.4 b2mb12\r\n", "OK", None, None),
    (b"* BAD\r\n", "BAD", None, None),
    (b"* OK [COPYUID 1 1:2 5:6] Moved UIDs.\r\n", "OK", "COPYUID", CopyUid(1, (1, 2), (5, 6))),
]


@pytest.mark.parametrize(("data", "status", "code", "value"), UNTAGGED_STATUS)
def test_untagged_status(data: bytes, status: str, code: str | None, value: Any) -> None:
    r = parse_one(data)
    assert isinstance(r, UntaggedStatus)
    assert r.status == status
    if code is None:
        assert r.code is None
    else:
        assert r.code is not None and r.code.name == code and r.code.value == value


def test_untagged_status_text_and_raw_code() -> None:
    r = parse_one(b"* OK [REFERRAL imap://user;AUTH=*@SERVER2/] Try there\r\n")
    assert r.code.name == "REFERRAL" and r.code.raw == "imap://user;AUTH=*@SERVER2/"
    assert r.text == "Try there"


DATA_CASES: list[tuple[bytes, Any]] = [
    (b"+ idling\r\n", Continuation("idling", b"idling")),
    (b"+\r\n", Continuation("", b"")),
    (b"+ \r\n", Continuation("", b"")),
    (
        b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n",
        Continuation("eyJzdGF0dXMiOiI0MDEifQ==", b"eyJzdGF0dXMiOiI0MDEifQ=="),
    ),
    (
        b"* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN auth=xoauth2\r\n",
        CapabilityResponse(
            frozenset({"IMAP4REV1", "SASL-IR", "LITERAL+", "AUTH=PLAIN", "AUTH=XOAUTH2"})
        ),
    ),
    (b"* ENABLED QRESYNC CONDSTORE\r\n", EnabledResponse(frozenset({"QRESYNC", "CONDSTORE"}))),
    (b"* ENABLED\r\n", EnabledResponse(frozenset())),
    (b"* ID NIL\r\n", IdResponse(None)),
    (
        b'* ID ("name" "Dovecot" "version" NIL)\r\n',
        IdResponse({"name": "Dovecot", "version": ""}),
    ),
    (
        b'* NAMESPACE (("" "/")) (("~" "/")) (("#shared/" "/")("#public/" "/"))\r\n',
        NamespaceResponse(
            (NamespaceEntry("", "/"),),
            (NamespaceEntry("~", "/"),),
            (NamespaceEntry("#shared/", "/"), NamespaceEntry("#public/", "/")),
        ),
    ),
    (
        b'* NAMESPACE (("INBOX." ".")) NIL NIL\r\n',
        NamespaceResponse((NamespaceEntry("INBOX.", "."),), (), ()),
    ),
    (b"* 23 EXISTS\r\n", ExistsResponse(23)),
    (b"* 0 RECENT\r\n", RecentResponse(0)),
    (b"* 5 EXPUNGE\r\n", ExpungeResponse(5)),
    (b"* SEARCH 2 84 882\r\n", SearchResponse((2, 84, 882))),
    (b"* SEARCH\r\n", SearchResponse(())),
    (b"* SEARCH 1 2 \r\n", SearchResponse((1, 2))),
    (
        b"* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n",
        SearchResponse((2, 5, 6, 7, 11, 12, 18, 19, 20, 23), 917162500),
    ),
    (
        b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n',
        EsearchResponse(tag="A282", uid=False, min=2, count=3),
    ),
    (
        b'* ESEARCH (TAG "A283") UID ALL 2,10:11\r\n',
        EsearchResponse(tag="A283", uid=True, all=(2, 10, 11)),
    ),
    (b'* ESEARCH (TAG "A284") UID\r\n', EsearchResponse(tag="A284", uid=True)),
    (
        b'* ESEARCH (TAG "a") UID ALL 1:3 MODSEQ 1234\r\n',
        EsearchResponse(tag="a", uid=True, all=(1, 2, 3), modseq=1234),
    ),
    (
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
        FlagsResponse(("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")),
    ),
    (b"* FLAGS ()\r\n", FlagsResponse(())),
    (
        b"* VANISHED (EARLIER) 300:303,405,411\r\n",
        VanishedResponse((300, 301, 302, 303, 405, 411), True),
    ),
    (b"* VANISHED 405\r\n", VanishedResponse((405,), False)),
    (
        b'* STATUS "INBOX" (MESSAGES 231 UIDNEXT 44292 UNSEEN 3 HIGHESTMODSEQ 7011231777)\r\n',
        MailboxStatusResponse(
            "INBOX",
            {"MESSAGES": 231, "UIDNEXT": 44292, "UNSEEN": 3, "HIGHESTMODSEQ": 7011231777},
            b"INBOX",
        ),
    ),
    (
        b"* STATUS Archive/2020 (MESSAGES 0)\r\n",
        MailboxStatusResponse("Archive/2020", {"MESSAGES": 0}, b"Archive/2020"),
    ),
    (
        b"* STATUS {5}\r\nEntw& (MESSAGES 1)\r\n",
        None,  # broken modified UTF-7: falls back to raw text; checked below
    ),
    (
        b'* QUOTA "" (STORAGE 10 512)\r\n',
        GenericResponse("QUOTA", None, (b"", ["STORAGE", "10", "512"])),
    ),
    (b"* 3 XFOO bar\r\n", GenericResponse("XFOO", 3, ("bar",))),
    (b"* SORT 2 3 6\r\n", GenericResponse("SORT", None, ("2", "3", "6"))),
]


@pytest.mark.parametrize(("data", "expected"), DATA_CASES)
def test_untagged_data(data: bytes, expected: Any) -> None:
    r = parse_one(data)
    if expected is None:
        assert isinstance(r, MailboxStatusResponse) and r.mailbox == "Entw&"
    else:
        assert r == expected


LIST_CASES = [
    (b'* LIST (\\HasNoChildren) "/" INBOX\r\n', ("\\HasNoChildren",), "/", "INBOX"),
    (
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"\r\n',
        ("\\HasNoChildren", "\\Sent"),
        "/",
        "Sent Items",
    ),
    (
        b'* LIST (\\Noselect \\HasChildren) "/" "[Gmail]"\r\n',
        ("\\Noselect", "\\HasChildren"),
        "/",
        "[Gmail]",
    ),
    (
        b'* LIST (\\HasNoChildren \\All) "/" "[Gmail]/All Mail"\r\n',
        ("\\HasNoChildren", "\\All"),
        "/",
        "[Gmail]/All Mail",
    ),
    (b'* LIST (\\HasNoChildren) "/" [Gmail]/Sent\r\n', ("\\HasNoChildren",), "/", "[Gmail]/Sent"),
    (b"* LIST () NIL Public\r\n", (), None, "Public"),
    (b'* LIST (\\Noselect) "." ""\r\n', ("\\Noselect",), ".", ""),
    (
        b'* LIST (\\HasNoChildren) "\\\\" "Inbox\\\\Sub"\r\n',
        ("\\HasNoChildren",),
        "\\",
        "Inbox\\Sub",
    ),
    (b'* LIST () "/" "&ZeVnLIqe-"\r\n', (), "/", "日本語"),
    (b'* LIST () "/" "Entw&APw-rfe/&-Co"\r\n', (), "/", "Entwürfe/&Co"),
    (b'* LIST () "/" {8}\r\nfoo"bar\\\r\n', (), "/", 'foo"bar\\'),
    (b'* LSUB () "." INBOX.Drafts\r\n', (), ".", "INBOX.Drafts"),
    (
        b'* XLIST (\\HasNoChildren \\Inbox) "/" "Inbox"\r\n',
        ("\\HasNoChildren", "\\Inbox"),
        "/",
        "Inbox",
    ),
    (b'* LIST (\\HasNoChildren) "/" "Caf\xc3\xa9"\r\n', ("\\HasNoChildren",), "/", "Café"),
]


@pytest.mark.parametrize(("data", "flags", "delim", "name"), LIST_CASES)
def test_list(data: bytes, flags: tuple[str, ...], delim: str | None, name: str) -> None:
    r = parse_one(data)
    assert isinstance(r, ListResponse)
    assert (r.flags, r.delimiter, r.name) == (flags, delim, name)


def test_list_extended_data() -> None:
    r = parse_one(b'* LIST (\\Subscribed \\NonExistent) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))\r\n')
    assert r.extended == {"CHILDINFO": ("SUBSCRIBED",)}
    r = parse_one(b'* LIST () "/" "New" ("OLDNAME" ("&AOQ-"))\r\n')
    assert r.extended == {"OLDNAME": "ä"}
    assert r.has_flag("\\subscribed") is False


def test_list_utf8_mode() -> None:
    r = parse_one(b'* LIST () "/" "&-Caf\xc3\xa9"\r\n', utf8_mailboxes=True)
    assert r.name == "&-Café"


def fetch(data: bytes) -> FetchResponse:
    r = parse_one(data)
    assert isinstance(r, FetchResponse)
    return r


def test_fetch_flags_modseq() -> None:
    r = fetch(b"* 12 FETCH (UID 4827313 FLAGS (\\Seen $Forwarded NonJunk) MODSEQ (65402))\r\n")
    assert r.seq == 12 and r.uid == 4827313 and r.modseq == 65402
    assert r.flags == ("\\Seen", "$Forwarded", "NonJunk")


def test_fetch_empty_flags_and_lowercase_names() -> None:
    r = fetch(b"* 1 fetch (flags () uid 7 rfc822.size 1024)\r\n")
    assert r.flags == () and r.uid == 7 and r.size == 1024


def test_fetch_internaldate() -> None:
    r = fetch(b'* 1 FETCH (INTERNALDATE " 7-Jul-2021 02:44:25 -0700" UID 1)\r\n')
    assert r.internaldate == datetime(2021, 7, 7, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))
    r = fetch(b'* 1 FETCH (INTERNALDATE "17-Jul-1996 02:44:25 +0000")\r\n')
    assert r.internaldate == datetime(1996, 7, 17, 2, 44, 25, tzinfo=UTC)
    r = fetch(b'* 1 FETCH (INTERNALDATE "garbage")\r\n')
    assert r.internaldate is None and "INTERNALDATE" in r.attrs


def test_fetch_body_literal_and_header_fields() -> None:
    r = fetch(
        b"* 2 FETCH (UID 9 BODY[HEADER.FIELDS (SUBJECT FROM)] {21}\r\n"
        b"Subject: Hi there\r\n\r\n"
        b" BODY[]<0> {5}\r\nab\r\nc FLAGS (\\Seen))\r\n"
    )
    assert r.attrs["BODY[HEADER.FIELDS (SUBJECT FROM)]"] == b"Subject: Hi there\r\n\r\n"
    assert r.section("HEADER.FIELDS (SUBJECT FROM)") == b"Subject: Hi there\r\n\r\n"
    assert r.attrs["BODY[]<0>"] == b"ab\r\nc"
    assert r.section("") == b"ab\r\nc"
    assert r.flags == ("\\Seen",)


def test_fetch_body_quoted_nil_and_binary() -> None:
    r = fetch(
        b'* 3 FETCH (BODY[1] "hello" BODY[2] NIL BINARY[1] ~{3}\r\n\x00\x01\x02 BINARY.SIZE[1] 3)\r\n'
    )
    assert r.attrs["BODY[1]"] == b"hello"
    assert r.attrs["BODY[2]"] is None
    assert r.attrs["BINARY[1]"] == b"\x00\x01\x02"
    assert r.attrs["BINARY.SIZE[1]"] == 3


def test_fetch_rfc822_8bit() -> None:
    body = "Subject: café\r\n\r\nüñí\xff".encode("latin-1", "replace")
    r = fetch(b"* 4 FETCH (RFC822 {%d}\r\n" % len(body) + body + b" RFC822.HEADER NIL)\r\n")
    assert r.attrs["RFC822"] == body and r.attrs["RFC822.HEADER"] is None


def test_fetch_objectid_and_gmail() -> None:
    r = fetch(b"* 1 FETCH (UID 1 EMAILID (M6d99ac3275bb4e) THREADID (T64b478a75b7ea9))\r\n")
    assert r.email_id == "M6d99ac3275bb4e" and r.thread_id == "T64b478a75b7ea9"
    r = fetch(b"* 1 FETCH (THREADID NIL)\r\n")
    assert r.thread_id is None
    r = fetch(
        b"* 1 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334865 "
        b'X-GM-LABELS (\\Inbox \\Sent Important "Muy Importante" "&ZeVnLIqe-") UID 4)\r\n'
    )
    assert r.attrs["X-GM-MSGID"] == 1278455344230334865
    assert r.email_id == "1278455344230334865" and r.thread_id == "1278455344230334865"
    assert r.attrs["X-GM-LABELS"] == ("\\Inbox", "\\Sent", "Important", "Muy Importante", "日本語")


def test_fetch_envelope() -> None:
    r = fetch(
        b'* 12 FETCH (ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
        b'"=?utf-8?q?Caf=C3=A9_meeting?=" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US") ("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>"))\r\n'
    )
    env = r.envelope
    assert env is not None
    assert env.subject == "Café meeting"
    assert env.date == datetime(1996, 7, 17, 2, 23, 25, tzinfo=timezone(timedelta(hours=-7)))
    assert env.from_[0].name == "Terry Gray" and env.from_[0].email == "gray@cac.washington.edu"
    assert env.to[0].name is None and env.to[0].email == "imap@cac.washington.edu"
    assert env.cc[1].name == "Keld Jørn Simonsen"
    assert env.bcc == () and env.in_reply_to is None
    assert env.message_id == "<B27397-0100000@cac.washington.edu>"


def test_envelope_groups_literals_and_bad_date() -> None:
    r = fetch(
        b'* 1 FETCH (ENVELOPE ("not a date" {6}\r\nS\xc3\xbcbj\xc3 NIL NIL NIL '
        b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        b'((NIL NIL "team" NIL)("A" NIL "a" "x.org")(NIL NIL NIL NIL)) NIL NIL NIL))\r\n'
    )
    env = r.envelope
    assert env is not None and env.date is None and env.date_raw == "not a date"
    assert env.subject == "Sübj\ufffd"
    assert env.to == ()
    assert env.cc[0].group == "team" and env.cc[0].email == "a@x.org"


def test_fetch_modseq_without_parens_tolerated() -> None:
    assert fetch(b"* 1 FETCH (MODSEQ 5)\r\n").modseq == 5


def test_fetch_unknown_item_kept_raw() -> None:
    r = fetch(b"* 1 FETCH (X-FOO (a b) UID 1)\r\n")
    assert r.attrs["X-FOO"] == ["a", "b"] and r.uid == 1


def test_continuation_with_base64() -> None:
    r = parse_one(b"+ eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIn0=\r\n")
    assert isinstance(r, Continuation)


def test_bare_lf_line_endings_tolerated() -> None:
    out = ResponseParser().feed(b"* 1 EXISTS\n* 2 RECENT\nA1 OK done\n")
    assert out == [ExistsResponse(1), RecentResponse(2), TaggedResponse("A1", "OK", None, "done")]


def test_byte_by_byte_with_literals() -> None:
    data = (
        b"* 1 FETCH (UID 1 BODY[] {12}\r\nhello\r\nworld)\r\n"
        b'* LIST () "/" {3}\r\nabc\r\n'
        b"A1 OK done\r\n"
    )
    whole = ResponseParser().feed(data)
    p = ResponseParser()
    parts: list[Any] = []
    for i in range(len(data)):
        parts += p.feed(data[i : i + 1])
    assert parts == whole and len(whole) == 3
    assert whole[0].attrs["BODY[]"] == b"hello\r\nworld"


GARBAGE = [
    b"\r\n",
    b"*\r\n",
    b"* \r\n",
    b"A1\r\n",
    b"A1 FOO bar\r\n",
    b"A1 BYE bye\r\n",
    b"* 1 FETCH (UID x)\r\n",
    b"* 1 FETCH (UID 1\r\n",
    b"* 1 FETCH UID 1)\r\n",
    b"* 1 FETCH UID\r\n",
    b"* LIST ()\r\n",
    b"* VANISHED (EARLIER)\r\n",
    b"* VANISHED 4294967295:1\r\n",
    b"* SEARCH 1 two\r\n",
    b"* 1 FETCH (\x00)\r\n",
    b"* 1 FETCH ({5)\r\n",
    b"* 1 EXISTS extra)\r\n",
    b'* ESEARCH (TAG "x") UID ALL 1:999999999\r\n',
    b"* 1 FETCH (" + b"(" * 100 + b")" * 100 + b")\r\n",
    b"* 99999999999999999999999 EXISTS\r\n",
]


@pytest.mark.parametrize("data", GARBAGE)
def test_garbage_raises_protocol_error(data: bytes) -> None:
    p = ResponseParser()
    with pytest.raises(ProtocolError):
        p.feed(data)
    with pytest.raises(ProtocolError):  # stays broken
        p.feed(b"A1 OK fine\r\n")


def test_limits_line_and_literal() -> None:
    limits = ImapLimits(max_line_length=100, max_literal_size=50)
    with pytest.raises(ProtocolError):
        ResponseParser(limits).feed(b"* OK " + b"x" * 200)  # no newline yet: still refused
    with pytest.raises(ProtocolError):
        ResponseParser(limits).feed(b"* 1 FETCH (BODY[] {51}\r\n")
    assert ResponseParser(limits).feed(b"* 1 FETCH (BODY[] {50}\r\n" + b"x" * 50 + b")\r\n")


def test_limits_literal_count_and_response_size() -> None:
    limits = ImapLimits(max_literals_per_response=2, max_response_size=1000)
    with pytest.raises(ProtocolError):
        ResponseParser(limits).feed(b'* LIST () "/" ({1}\r\na {1}\r\nb {1}\r\nc)\r\n')
    with pytest.raises(ProtocolError):
        ResponseParser(limits).feed(
            b"* 1 FETCH (BODY[] {900}\r\n" + b"x" * 900 + b" BODY[1] {200}\r\n"
        )


def test_response_code_in_capability_greeting_lowercase() -> None:
    r = parse_one(b"* ok [capability imap4rev1 starttls] hi\r\n")
    assert r.status == "OK" and r.code.value == frozenset({"IMAP4REV1", "STARTTLS"})


def test_exchange_greeting_and_yahoo_quirks() -> None:
    p = ResponseParser()
    out = p.feed(
        b"* OK The Microsoft Exchange IMAP4 service is ready. [TQBXADIAUABSADAAMgBDAEEAMAAwADYAMgAuAGUAdQByAA==]\r\n"
        b"* OK [CAPABILITY IMAP4rev1 ID MOVE NAMESPACE XYMHIGHESTMODSEQ UIDPLUS LITERAL+ CHILDREN X-MSG-EXT UNSELECT OBJECTID] IMAP4rev1 Hello\r\n"
        b'* LIST (\\HasNoChildren) "/" "Bulk Mail"\r\n'
        b"* 1 FETCH (UID 2 FLAGS ())\r\n"
    )
    assert isinstance(out[0], UntaggedStatus) and out[0].code is None
    assert "OBJECTID" in out[1].code.value
    assert out[2].name == "Bulk Mail"


FAST_LINES = [
    b"* 1 FETCH (UID 5 FLAGS (\\Seen $Forwarded) MODSEQ (12))",
    b"* 2 FETCH (UID 6 FLAGS () MODSEQ (1))",
    b"* 3 FETCH (FLAGS (\\Deleted) UID 7)",
    b"* 4 FETCH (MODSEQ (9) UID 8 RFC822.SIZE 1234 FLAGS (\\Seen))",
    b"* 5 FETCH (UID 9 X-GM-MSGID 1278455344230334865 X-GM-THRID 1278455344230334865)",
    b"* 6 FETCH (UID 10)",
    b"* 7 FETCH (FLAGS (\\Seen))",
]


@pytest.mark.parametrize("line", FAST_LINES)
def test_fast_path_matches_general_path(line: bytes) -> None:
    from mailgate.protocols.imap.lexer import Frame

    parser = ResponseParser()
    fast = parser.feed(line + b"\r\n")[0]
    general = parser._untagged(Frame([line], []))
    assert fast == general


def test_fast_path_declines_unusual_shapes() -> None:
    # lower-case, extra spaces, quoted flags: all still parse (through the general path)
    for line in (
        b"* 1 fetch (uid 5 flags (\\Seen))",
        b"* 1 FETCH (UID 5  FLAGS (\\Seen))",
        b'* 1 FETCH (UID 5 FLAGS ("odd"))',
    ):
        r = ResponseParser().feed(line + b"\r\n")[0]
        assert isinstance(r, FetchResponse) and r.uid == 5
