"""Golden transcripts: a whole session's server bytes, fed in random chunk sizes."""

from __future__ import annotations

import random

import pytest

from mailgate.protocols.imap import (
    Continuation,
    EsearchResponse,
    FetchResponse,
    ListResponse,
    ResponseParser,
    TaggedResponse,
    UntaggedStatus,
    VanishedResponse,
)

BODY = b"From: a@example.org\r\nSubject: =?utf-8?b?w6TDtsO8?=\r\n\r\nHello \xe2\x82\xac\r\n.\r\n"

DOVECOT_SESSION = (
    b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot (Debian) ready.\r\n"
    b"A1 OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    b"MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE "
    b"QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY "
    b"PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE] Logged in\r\n"
    b"* ENABLED QRESYNC\r\n"
    b"A2 OK Enabled.\r\n"
    b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
    b"* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1700000000 HIGHESTMODSEQ 9)\r\n"
    b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n'
    b"* STATUS Sent (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1700000001 HIGHESTMODSEQ 1)\r\n"
    b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n'
    b'* STATUS "Entw&APw-rfe" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1700000002 HIGHESTMODSEQ 1)\r\n'
    b"A3 OK List completed (0.001 + 0.000 secs).\r\n"
    b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n"
    b"* 3 EXISTS\r\n"
    b"* 0 RECENT\r\n"
    b"* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
    b"* OK [UIDNEXT 4] Predicted next UID\r\n"
    b"* OK [HIGHESTMODSEQ 9] Highest\r\n"
    b"* VANISHED (EARLIER) 1:2\r\n"
    b"* 1 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (9))\r\n"
    b"A4 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"
    b'* 1 FETCH (UID 3 RFC822.SIZE %d FLAGS (\\Seen) INTERNALDATE "01-Feb-2024 10:00:00 +0100" '
    b"BODY[] {%d}\r\n" % (len(BODY), len(BODY)) + BODY + b" MODSEQ (9))\r\n"
    b"A5 OK Fetch completed (0.001 + 0.000 secs).\r\n"
    b'* ESEARCH (TAG "A6") UID ALL 3\r\n'
    b"A6 OK Search completed (0.001 + 0.000 secs).\r\n"
    b"+ idling\r\n"
    b"* 4 EXISTS\r\n"
    b"* 1 RECENT\r\n"
    b"A7 OK Idle completed (0.001 + 2.345 secs).\r\n"
    b"* OK [COPYUID 1700000001 3 1] Moved UIDs.\r\n"
    b"* VANISHED 3\r\n"
    b"A8 OK Move completed (0.001 + 0.000 secs).\r\n"
    b"* BYE Logging out\r\n"
    b"A9 OK Logout completed (0.001 + 0.000 secs).\r\n"
)


def test_golden_session_shape() -> None:
    out = ResponseParser().feed(DOVECOT_SESSION)
    kinds = [type(r).__name__ for r in out]
    assert kinds.count("TaggedResponse") == 9
    assert len(out) == 34
    lists = [r for r in out if isinstance(r, ListResponse)]
    assert [entry.name for entry in lists] == ["INBOX", "Sent", "Entwürfe"]
    fetch = next(r for r in out if isinstance(r, FetchResponse) and "BODY[]" in r.attrs)
    assert fetch.attrs["BODY[]"] == BODY and fetch.size == len(BODY) and fetch.modseq == 9
    assert any(isinstance(r, EsearchResponse) and r.all == (3,) for r in out)
    assert any(isinstance(r, VanishedResponse) and r.earlier for r in out)
    assert any(isinstance(r, Continuation) for r in out)
    assert isinstance(out[-2], UntaggedStatus) and out[-2].status == "BYE"
    assert isinstance(out[-1], TaggedResponse) and out[-1].tag == "A9"


@pytest.mark.parametrize("seed", range(25))
def test_random_chunking_gives_same_responses(seed: int) -> None:
    expected = ResponseParser().feed(DOVECOT_SESSION)
    rnd = random.Random(seed)
    parser = ResponseParser()
    got = []
    pos = 0
    while pos < len(DOVECOT_SESSION):
        size = rnd.choice([1, 2, 3, 7, 16, 100, 1000])
        got += parser.feed(DOVECOT_SESSION[pos : pos + size])
        pos += size
    assert got == expected
    assert parser.idle


def test_crlf_split_between_chunks() -> None:
    p = ResponseParser()
    assert p.feed(b"* 1 EXISTS\r") == []
    assert len(p.feed(b"\n")) == 1
    assert p.feed(b"* 1 FETCH (BODY[] {3}\r") == []
    assert p.feed(b"\nab") == []
    assert p.feed(b"c)\r\n")[0].attrs["BODY[]"] == b"abc"
