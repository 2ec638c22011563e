"""Messages over IMAP: every route of the "Message" and "Multi Message Actions" groups, over HTTP
against a real Dovecot, with a generated corpus (charsets, encoded words, attachments, a 5 MB
attachment, an inline cid image, a thread, a non-ASCII nested folder)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import imaplib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from mailgate.domain.ids import pack_attachment_id, pack_message_id, unpack_message_id
from mailgate.protocols.imap.utf7 import encode_utf7
from tests.conftest import MailUser
from tests.integration.helpers import imap_account
from tests.servers.dovecot import Dovecot
from tests.servers.mailgate import MailgateProcess

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

CRLF = policy.default.clone(linesep="\r\n")
NESTED = "Archiv/Über ✓"
BIG_SIZE = 5 * 1024 * 1024


# ---- corpus --------------------------------------------------------------------------------


def _date(i: int) -> str:
    import datetime as dt

    return format_datetime(dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC) + dt.timedelta(days=i))


def _base(subject: str, i: int, **headers: str) -> EmailMessage:
    msg = EmailMessage(policy=policy.default)
    msg["From"] = headers.pop("from_", "Alice Example <alice@example.test>")
    msg["To"] = headers.pop("to", "Bob <bob@example.test>")
    msg["Subject"] = subject
    msg["Date"] = _date(i)
    msg["Message-ID"] = headers.pop("mid", f"<corpus-{i}-{uuid.uuid4().hex[:8]}@example.test>")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    return msg


def _raw_message(headers: list[tuple[str, str]], content_type: str, cte: str, body: bytes) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += (
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: {cte}\r\n"
    )
    return head.encode("ascii") + b"\r\n" + body


@dataclass
class Corpus:
    """name → (raw bytes, attachments {filename: bytes})."""

    messages: dict[str, bytes] = field(default_factory=dict)
    attachments: dict[str, dict[str, bytes]] = field(default_factory=dict)


def build_corpus() -> Corpus:
    c = Corpus()
    rnd = os.urandom

    plain = _base("Plain hello", 0, Cc="Carol <carol@example.test>")
    plain.set_content("Hello plain world.\nSecond line with the word zebracorn.\n")
    c.messages["plain"] = plain.as_bytes(policy=CRLF)

    html = _base("Only HTML", 1)
    html.set_content("<html><body><p>Hello <b>HTML</b> world</p></body></html>", subtype="html")
    c.messages["html"] = html.as_bytes(policy=CRLF)

    alt = _base("Alternative", 2)
    alt.set_content("Alternative plain text\n")
    alt.add_alternative("<p>Alternative <i>html</i> text</p>", subtype="html")
    c.messages["alternative"] = alt.as_bytes(policy=CRLF)

    mixed = _base("With attachments", 3, to="Dave <dave@example.test>, eve@example.test")
    mixed.set_content("See the attached files.\n")
    files = {
        "report.pdf": b"%PDF-1.4\n" + rnd(150_000),
        "data.csv": ("name,city\nJürgen,München\n" * 500).encode(),
        "pixel.png": b"\x89PNG\r\n\x1a\n" + rnd(3000),
        "notes.txt": "ünïcödé notes\n".encode() * 40,
    }
    mixed.add_attachment(files["report.pdf"], "application", "pdf", filename="report.pdf")
    csv = EmailMessage()
    csv.set_content(files["data.csv"], "text", "csv", cte="quoted-printable")
    csv.add_header("Content-Disposition", "attachment", filename="data.csv")
    mixed.attach(csv)
    mixed.add_attachment(files["pixel.png"], "image", "png", filename="pixel.png")
    mixed.add_attachment(files["notes.txt"], "text", "plain", filename="notes.txt")
    c.messages["mixed"] = mixed.as_bytes(policy=CRLF)
    c.attachments["mixed"] = files

    big = _base("Big attachment", 4)
    big.set_content("A big one.\n")
    big_data = rnd(BIG_SIZE)
    big.add_attachment(big_data, "application", "octet-stream", filename="big.bin")
    c.messages["big"] = big.as_bytes(policy=CRLF)
    c.attachments["big"] = {"big.bin": big_data}

    inline = _base("Inline image", 5)
    inline.set_content("Image below\n")
    inline.add_alternative('<p>Look: <img src="cid:logo@example.test"></p>', subtype="html")
    logo = b"GIF89a" + rnd(500)
    html_part = inline.get_payload()[1]
    html_part.add_related(logo, "image", "gif", cid="<logo@example.test>", filename="logo.gif")
    c.messages["inline"] = inline.as_bytes(policy=CRLF)
    c.attachments["inline"] = {"logo.gif": logo}

    c.messages["latin1"] = _raw_message(
        [("From", "=?iso-8859-1?Q?Jos=E9?= <jose@example.test>"),
         ("To", "bob@example.test"), ("Subject", "=?iso-8859-1?Q?Caf=E9_cr=E8me?="),
         ("Date", _date(6)), ("Message-ID", "<latin1@example.test>")],
        "text/plain; charset=iso-8859-1", "quoted-printable",
        b"Caf=E9 cr=E8me br=FBl=E9e, d=E9j=E0 vu.\r\n",
    )  # fmt: skip
    c.messages["koi8r"] = _raw_message(
        [("From", "=?koi8-r?B?" + base64.b64encode("Иван".encode("koi8-r")).decode() + "?= <ivan@example.test>"),
         ("To", "bob@example.test"), ("Subject", "=?koi8-r?B?" + base64.b64encode("Привет мир".encode("koi8-r")).decode() + "?="),
         ("Date", _date(7)), ("Message-ID", "<koi8r@example.test>")],
        "text/plain; charset=koi8-r", "base64",
        base64.encodebytes("Здравствуй, мир! Проверка.\n".encode("koi8-r")).replace(b"\n", b"\r\n"),
    )  # fmt: skip
    c.messages["sjis"] = _raw_message(
        [("From", "taro@example.test"), ("To", "bob@example.test"),
         ("Subject", "=?shift_jis?B?" + base64.b64encode("こんにちは".encode("shift_jis")).decode() + "?="),
         ("Date", _date(8)), ("Message-ID", "<sjis@example.test>")],
        "text/plain; charset=shift_jis", "8bit",
        "日本語のテキストです。\r\n".encode("shift_jis"),
    )  # fmt: skip

    root = _base("Thread start", 9, mid="<thread-1@example.test>")
    root.set_content("Shall we meet?\n")
    c.messages["thread1"] = root.as_bytes(policy=CRLF)
    reply = _base(
        "Re: Thread start",
        10,
        mid="<thread-2@example.test>",
        from_="Bob <bob@example.test>",
        to="Alice Example <alice@example.test>",
        In_Reply_To="<thread-1@example.test>",
        References="<thread-1@example.test>",
        X_Custom="custom value",
    )
    reply.set_content("Yes, tomorrow.\n")
    c.messages["thread2"] = reply.as_bytes(policy=CRLF)
    return c


def quoted(folder: str) -> str:
    return '"' + encode_utf7(folder).decode("ascii") + '"'


def imap_login(dovecot: Dovecot, user: MailUser) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    conn.login(user.name, user.password)
    return conn


def append(
    dovecot: Dovecot, user: MailUser, raw: bytes, folder: str = "INBOX", flags: str = ""
) -> None:
    conn = imap_login(dovecot, user)
    try:
        typ, data = conn.append(quoted(folder), flags or None, None, raw)
        assert typ == "OK", data
    finally:
        conn.logout()


def register(mailgate: MailgateProcess, dovecot: Dovecot, user: MailUser) -> str:
    account = f"msg-{uuid.uuid4().hex[:8]}"
    body = imap_account(account, user.name, user.password, dovecot.host, dovecot.imap_port)
    body["imapIndexer"] = "fast"
    with mailgate.client() as http:
        resp = http.post("/v1/account", json=body)
        assert resp.status_code == 200, resp.text
    return account


def new_user(dovecot: Dovecot) -> MailUser:
    user = MailUser(f"msg{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex[:12]}")
    dovecot.add_user(user.name, user.password)
    return user


@dataclass
class Loaded:
    account: str
    user: MailUser
    corpus: Corpus
    ids: dict[str, str]  # corpus name → message id


@pytest.fixture(scope="module")
def loaded(mailgate: MailgateProcess, dovecot: Dovecot) -> Iterator[Loaded]:
    user = new_user(dovecot)
    corpus = build_corpus()
    for raw in corpus.messages.values():
        append(dovecot, user, raw)
    dovecot.create_folder(user.name, NESTED)
    append(dovecot, user, corpus.messages["plain"], NESTED)
    account = register(mailgate, dovecot, user)
    with mailgate.client() as http:
        listing = http.get(
            f"/v1/account/{account}/messages", params={"path": "INBOX", "pageSize": 100}
        )
        assert listing.status_code == 200, listing.text
        by_mid = {m["messageId"]: m["id"] for m in listing.json()["messages"]}
    ids = {}
    for name, raw in corpus.messages.items():
        mid = re.search(rb"(?im)^message-id:\s*(<[^>]+>)", raw)
        assert mid is not None
        ids[name] = by_mid[mid.group(1).decode()]
    yield Loaded(account, user, corpus, ids)


# ---- listing and paging --------------------------------------------------------------------


def test_listing_paging_and_cursors(mailgate: MailgateProcess, dovecot: Dovecot) -> None:
    user = new_user(dovecot)
    dovecot.fill(user.name, "Bulk", 45)
    account = register(mailgate, dovecot, user)
    url = f"/v1/account/{account}/messages"
    with mailgate.client() as http:
        first = http.get(url, params={"path": "Bulk"}).json()
        assert (first["total"], first["page"], first["pages"]) == (45, 0, 3)
        subjects = [m["subject"] for m in first["messages"]]
        assert subjects == [f"Message {i}" for i in range(44, 24, -1)]  # newest first
        assert first["prevPageCursor"] is None and first["nextPageCursor"].startswith("imap_")
        entry = first["messages"][0]
        assert entry["path"] == "Bulk" and entry["unseen"] is True and entry["flags"] == []
        assert entry["from"] == {"name": "Sender 10", "address": "sender10@example.test"}
        assert entry["to"] == [{"address": "recipient@example.test"}]
        assert entry["size"] > 0 and entry["date"].endswith("Z")
        assert entry["text"]["id"] and entry["text"]["encodedSize"]["plain"] > 0

        by_page = http.get(url, params={"path": "Bulk", "page": 2}).json()
        assert [m["subject"] for m in by_page["messages"]] == [
            f"Message {i}" for i in range(4, -1, -1)
        ]
        assert by_page["nextPageCursor"] is None and by_page["page"] == 2

        # a new message arrives: cursors are UID anchors, so the next page does not shift
        dovecot.deliver(user.name, b"Subject: newest\r\nFrom: n@example.test\r\n\r\nhi\r\n", "Bulk")
        second = http.get(url, params={"path": "Bulk", "cursor": first["nextPageCursor"]}).json()
        assert [m["subject"] for m in second["messages"]] == [
            f"Message {i}" for i in range(24, 4, -1)
        ]
        assert second["total"] == 46 and second["page"] == 1
        back = http.get(url, params={"path": "Bulk", "cursor": second["prevPageCursor"]}).json()
        assert [m["subject"] for m in back["messages"]] == subjects
        # cursor wins over page
        again = http.get(url, params={"path": "Bulk", "cursor": first["nextPageCursor"], "page": 2})
        assert again.json()["messages"] == second["messages"]

        small = http.get(url, params={"path": "Bulk", "pageSize": 7}).json()
        assert small["pages"] == 7 and len(small["messages"]) == 7

        bad = http.get(url, params={"path": "Bulk", "cursor": "imap_garbage"})
        assert bad.status_code == 400 and bad.json()["code"] == "InvalidCursor"
        other = http.get(url, params={"path": "INBOX", "cursor": first["nextPageCursor"]})
        assert other.status_code == 400
        missing = http.get(url, params={"path": "No/Such/Folder"})
        assert missing.status_code == 404 and missing.json()["code"] == "MailboxNotFound"
        assert http.get(url).status_code == 400  # path is required
        empty = http.get(url, params={"path": "Junk"}).json()
        assert (empty["total"], empty["pages"], empty["messages"]) == (0, 1, [])
        assert http.get(url, params={"path": "\\Trash"}).status_code == 200


def test_listing_pages_follow_new_and_expunged_mail(
    mailgate: MailgateProcess, dovecot: Dovecot
) -> None:
    """A listing by page number reads the mailbox by sequence numbers (no SEARCH): mail that
    arrives or is expunged by another client between two requests is reflected at once."""
    user = new_user(dovecot)
    dovecot.fill(user.name, "Seq", 25)
    account = register(mailgate, dovecot, user)
    url = f"/v1/account/{account}/messages"
    with mailgate.client() as http:
        first = http.get(url, params={"path": "Seq"}).json()
        assert first["total"] == 25 and len(first["messages"]) == 20
        assert [m["subject"] for m in first["messages"]] == [
            f"Message {i}" for i in range(24, 4, -1)
        ]
        dovecot.deliver(user.name, b"Subject: newest\r\nFrom: n@example.test\r\n\r\nhi\r\n", "Seq")
        second = http.get(url, params={"path": "Seq"}).json()
        assert second["total"] == 26 and second["pages"] == 2
        assert second["messages"][0]["subject"] == "newest"
        assert second["messages"][1]["uid"] == first["messages"][0]["uid"]

        conn = imap_login(dovecot, user)
        try:
            conn.select(quoted("Seq"))
            # expunge "Message 20" (sequence number 21) and the oldest message
            conn.store("1,21", "+FLAGS.SILENT", "(\\Deleted)")
            conn.expunge()
        finally:
            conn.logout()
        third = http.get(url, params={"path": "Seq"}).json()
        assert third["total"] == 24
        subjects = [m["subject"] for m in third["messages"]]
        assert subjects == ["newest", *[f"Message {i}" for i in range(24, 4, -1) if i != 20]]
        last = http.get(url, params={"path": "Seq", "page": 1}).json()
        assert [m["subject"] for m in last["messages"]] == [f"Message {i}" for i in range(4, 0, -1)]
        assert last["nextPageCursor"] is None and last["prevPageCursor"] is not None
        back = http.get(url, params={"path": "Seq", "cursor": last["prevPageCursor"]}).json()
        assert back["messages"] == third["messages"]
        past = http.get(url, params={"path": "Seq", "page": 5}).json()
        assert (past["total"], past["messages"], past["nextPageCursor"]) == (24, [], None)


def test_listing_nested_non_ascii_folder(mailgate: MailgateProcess, loaded: Loaded) -> None:
    with mailgate.client() as http:
        listing = http.get(f"/v1/account/{loaded.account}/messages", params={"path": NESTED}).json()
        assert listing["total"] == 1
        msg = listing["messages"][0]
        assert msg["path"] == NESTED and msg["subject"] == "Plain hello"
        read = http.get(f"/v1/account/{loaded.account}/message/{msg['id']}").json()
        assert read["path"] == NESTED
        src = http.get(f"/v1/account/{loaded.account}/message/{msg['id']}/source")
        assert src.content == loaded.corpus.messages["plain"]


# ---- reading -------------------------------------------------------------------------------


def test_read_every_field(mailgate: MailgateProcess, loaded: Loaded) -> None:
    base = f"/v1/account/{loaded.account}"
    with mailgate.client() as http:
        msg = http.get(f"{base}/message/{loaded.ids['plain']}", params={"textType": "*"}).json()
        assert msg["id"] == loaded.ids["plain"]
        assert unpack_message_id(msg["id"])[1] == msg["uid"]
        assert msg["path"] == "INBOX" and msg["specialUse"] == "\\Inbox"
        assert msg["subject"] == "Plain hello"
        assert msg["from"] == {"name": "Alice Example", "address": "alice@example.test"}
        assert msg["to"] == [{"name": "Bob", "address": "bob@example.test"}]
        assert msg["cc"] == [{"name": "Carol", "address": "carol@example.test"}]
        assert msg["messageId"].startswith("<corpus-0-")
        assert msg["unseen"] is True and msg["flags"] == []
        assert msg["size"] == len(loaded.corpus.messages["plain"])
        assert msg["headers"]["subject"] == ["Plain hello"]
        assert msg["headers"]["content-type"] == ['text/plain; charset="utf-8"']
        assert msg["text"]["plain"].startswith("Hello plain world.")
        assert "zebracorn" in msg["text"]["html"]  # made from the plain text
        assert msg["text"]["hasMore"] is False
        assert msg["text"]["encodedSize"]["plain"] > 0
        assert msg["attachments"] == [] and msg["isAutoReply"] is False

        # no textType: the text is described, not returned
        bare = http.get(f"{base}/message/{loaded.ids['plain']}").json()
        assert "plain" not in bare["text"] and bare["text"]["id"] == msg["text"]["id"]
        cut = http.get(
            f"{base}/message/{loaded.ids['plain']}", params={"textType": "plain", "maxBytes": 5}
        ).json()
        assert cut["text"] == {**cut["text"], "plain": "Hello", "hasMore": True}
        assert "html" not in cut["text"]

        html = http.get(f"{base}/message/{loaded.ids['html']}", params={"textType": "*"}).json()
        assert "<b>HTML</b>" in html["text"]["html"] and "HTML" in html["text"]["plain"]

        alt = http.get(
            f"{base}/message/{loaded.ids['alternative']}", params={"textType": "*"}
        ).json()
        assert alt["text"]["plain"].strip() == "Alternative plain text"
        assert "<i>html</i>" in alt["text"]["html"]

        thread = http.get(f"{base}/message/{loaded.ids['thread2']}").json()
        assert thread["inReplyTo"] == "<thread-1@example.test>"
        assert thread["headers"]["references"] == ["<thread-1@example.test>"]
        assert thread["headers"]["x-custom"] == ["custom value"]


@pytest.mark.parametrize(
    ("name", "subject", "sender", "body"),
    [
        ("latin1", "Café crème", "José", "Café crème brûlée, déjà vu."),
        ("koi8r", "Привет мир", "Иван", "Здравствуй, мир! Проверка."),
        ("sjis", "こんにちは", None, "日本語のテキストです。"),
    ],
)
def test_read_charsets_and_encoded_words(
    mailgate: MailgateProcess,
    loaded: Loaded,
    name: str,
    subject: str,
    sender: str | None,
    body: str,
) -> None:
    with mailgate.client() as http:
        msg = http.get(
            f"/v1/account/{loaded.account}/message/{loaded.ids[name]}", params={"textType": "*"}
        ).json()
        assert msg["subject"] == subject
        if sender:
            assert msg["from"]["name"] == sender
        assert msg["text"]["plain"].strip() == body
        assert msg["headers"]["subject"][0].startswith("=?")  # raw, not decoded
        text = http.get(f"/v1/account/{loaded.account}/text/{msg['text']['id']}").json()
        assert text["plain"].strip() == body and text["hasMore"] is False


def test_attachments_download_identical(mailgate: MailgateProcess, loaded: Loaded) -> None:
    base = f"/v1/account/{loaded.account}"
    with mailgate.client() as http:
        msg = http.get(f"{base}/message/{loaded.ids['mixed']}").json()
        assert msg["to"] == [
            {"name": "Dave", "address": "dave@example.test"},
            {"address": "eve@example.test"},
        ]
        by_name = {a["filename"]: a for a in msg["attachments"]}
        assert set(by_name) == set(loaded.corpus.attachments["mixed"])
        assert by_name["report.pdf"]["contentType"] == "application/pdf"
        assert by_name["data.csv"]["contentType"] == "text/csv"
        for filename, expected in loaded.corpus.attachments["mixed"].items():
            att = by_name[filename]
            assert att["encodedSize"] > 0 and att["embedded"] is False
            resp = http.get(f"{base}/attachment/{att['id']}")
            assert resp.status_code == 200, resp.text
            assert resp.content == expected, filename
            assert resp.headers["content-type"].startswith(att["contentType"])
            assert f'filename="{filename}"' in resp.headers["content-disposition"]


def test_big_attachment_streams(mailgate: MailgateProcess, loaded: Loaded) -> None:
    base = f"/v1/account/{loaded.account}"
    expected = loaded.corpus.attachments["big"]["big.bin"]
    with mailgate.client() as http:
        msg = http.get(f"{base}/message/{loaded.ids['big']}", params={"textType": "*"}).json()
        assert msg["size"] > BIG_SIZE
        assert msg["text"]["plain"].strip() == "A big one."  # large-message path
        assert msg["headers"]["subject"] == ["Big attachment"]
        (att,) = msg["attachments"]
        digest = hashlib.sha256()
        size = 0
        with http.stream("GET", f"{base}/attachment/{att['id']}") as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"] == "application/octet-stream"
            for chunk in resp.iter_bytes():
                digest.update(chunk)
                size += len(chunk)
        assert size == BIG_SIZE and digest.digest() == hashlib.sha256(expected).digest()
        src = http.get(f"{base}/message/{loaded.ids['big']}/source")
        assert src.content == loaded.corpus.messages["big"]


def test_inline_cid_image(mailgate: MailgateProcess, loaded: Loaded) -> None:
    base = f"/v1/account/{loaded.account}"
    logo = loaded.corpus.attachments["inline"]["logo.gif"]
    with mailgate.client() as http:
        msg = http.get(f"{base}/message/{loaded.ids['inline']}", params={"textType": "*"}).json()
        (att,) = msg["attachments"]
        assert att["contentId"] == "<logo@example.test>"
        assert att["embedded"] is True and att["inline"] is True
        assert "cid:logo@example.test" in msg["text"]["html"]
        assert http.get(f"{base}/attachment/{att['id']}").content == logo
        safe = http.get(
            f"{base}/message/{loaded.ids['inline']}", params={"webSafeHtml": True}
        ).json()
        assert safe["text"]["webSafe"] is True
        assert (
            "data:image/gif;base64," + base64.b64encode(logo).decode()[:40] in safe["text"]["html"]
        )
        text = http.get(f"{base}/text/{msg['text']['id']}", params={"webSafeHtml": True}).json()
        assert text["webSafe"] is True and "plain" not in text


def test_source_is_byte_identical(mailgate: MailgateProcess, loaded: Loaded) -> None:
    base = f"/v1/account/{loaded.account}"
    with mailgate.client() as http:
        for name, raw in loaded.corpus.messages.items():
            resp = http.get(f"{base}/message/{loaded.ids[name]}/source")
            assert resp.status_code == 200
            assert resp.content == raw, name
            assert resp.headers["content-type"].startswith("message/rfc822")


def test_text_route(mailgate: MailgateProcess, loaded: Loaded) -> None:
    base = f"/v1/account/{loaded.account}"
    with mailgate.client() as http:
        msg = http.get(f"{base}/message/{loaded.ids['alternative']}").json()
        text = http.get(f"{base}/text/{msg['text']['id']}").json()
        assert text["plain"].strip() == "Alternative plain text"
        assert "<i>html</i>" in text["html"] and text["hasMore"] is False
        only_html = http.get(f"{base}/text/{msg['text']['id']}", params={"textType": "html"}).json()
        assert "plain" not in only_html
        cut = http.get(f"{base}/text/{msg['text']['id']}", params={"maxBytes": 4}).json()
        assert cut["plain"] == "Alte" and cut["hasMore"] is True
        bad = http.get(f"{base}/text/{msg['text']['id']}", params={"textType": "pdf"})
        assert bad.status_code == 400


# ---- search --------------------------------------------------------------------------------


def _search(http: httpx.Client, account: str, query: dict[str, Any], **params: Any) -> list[str]:
    resp = http.post(
        f"/v1/account/{account}/search", params={"path": "INBOX", **params}, json={"search": query}
    )
    assert resp.status_code == 200, resp.text
    return [m["subject"] for m in resp.json()["messages"]]


def test_search_criteria(mailgate: MailgateProcess, loaded: Loaded, dovecot: Dovecot) -> None:
    acct = loaded.account
    with mailgate.client() as http:
        assert _search(http, acct, {"subject": "Thread start"}) == [
            "Re: Thread start",
            "Thread start",
        ]
        assert set(_search(http, acct, {"from": "bob@example.test"})) == {"Re: Thread start"}
        assert _search(http, acct, {"to": "dave@example.test"}) == ["With attachments"]
        assert _search(http, acct, {"body": "zebracorn"}) == ["Plain hello"]
        assert _search(http, acct, {"subject": "Привет"}) == ["Привет мир"]
        assert _search(http, acct, {"header": {"X-Custom": "custom value"}}) == ["Re: Thread start"]
        assert _search(http, acct, {"larger": BIG_SIZE}) == ["Big attachment"]
        assert _search(http, acct, {"sentSince": "2024-03-10"}) == [
            "Re: Thread start",
            "Thread start",
        ]
        assert _search(http, acct, {"sentSince": "2024-03-09", "sentBefore": "2024-03-10"}) == [
            "こんにちは"
        ]
        assert _search(http, acct, {"sentBefore": "2024-03-01"}) == []
        assert len(_search(http, acct, {"since": "2000-01-01"})) == len(loaded.corpus.messages)
        assert _search(http, acct, {"before": "2000-01-01"}) == []
        uid = unpack_message_id(loaded.ids["html"])[1]
        assert _search(http, acct, {"uid": str(uid)}) == ["Only HTML"]
        # unseen / flagged: flag one message from a second session
        conn = imap_login(dovecot, loaded.user)
        try:
            conn.select("INBOX")
            conn.uid("STORE", str(uid), "+FLAGS", "(\\Flagged \\Seen)")
        finally:
            conn.logout()
        assert _search(http, acct, {"flagged": True}) == ["Only HTML"]
        assert "Only HTML" not in _search(http, acct, {"unseen": True}, pageSize=100)
        assert _search(http, acct, {"seen": True}) == ["Only HTML"]
        paged = http.post(
            f"/v1/account/{acct}/search",
            params={"path": "INBOX", "pageSize": 2},
            json={"search": {"unseen": True}},
        ).json()
        assert paged["total"] == len(loaded.corpus.messages) - 1 and paged["pages"] == -(
            -paged["total"] // 2
        )
        nxt = http.post(
            f"/v1/account/{acct}/search",
            params={"path": "INBOX", "pageSize": 2, "cursor": paged["nextPageCursor"]},
            json={"search": {"unseen": True}},
        ).json()
        assert not {m["id"] for m in nxt["messages"]} & {m["id"] for m in paged["messages"]}
        bad = http.post(
            f"/v1/account/{acct}/search", params={"path": "INBOX"}, json={"search": {"nope": 1}}
        )
        assert bad.status_code == 400


# ---- changes -------------------------------------------------------------------------------


def _uid_flags(dovecot: Dovecot, user: MailUser, folder: str, uid: int) -> set[str]:
    conn = imap_login(dovecot, user)
    try:
        conn.select(quoted(folder))
        typ, data = conn.uid("FETCH", str(uid), "(FLAGS)")
        assert typ == "OK" and data and data[0], data
        raw = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
        match = re.search(r"FLAGS \(([^)]*)\)", raw)
        return set(match.group(1).split()) if match else set()
    finally:
        conn.logout()


@pytest.fixture
def fresh(
    mailgate: MailgateProcess, dovecot: Dovecot
) -> Callable[[int], tuple[str, MailUser, list[dict[str, Any]]]]:
    def make(count: int) -> tuple[str, MailUser, list[dict[str, Any]]]:
        user = new_user(dovecot)
        for i in range(count):
            msg = _base(f"Change {i}", i)
            msg.set_content(f"body {i}\n")
            append(dovecot, user, msg.as_bytes(policy=CRLF))
        account = register(mailgate, dovecot, user)
        with mailgate.client() as http:
            listing = http.get(f"/v1/account/{account}/messages", params={"path": "INBOX"}).json()
        return account, user, listing["messages"]

    return make


def test_flags_add_delete_set(mailgate: MailgateProcess, dovecot: Dovecot, fresh: Any) -> None:
    account, user, messages = fresh(1)
    msg = messages[0]
    url = f"/v1/account/{account}/message/{msg['id']}"
    with mailgate.client() as http:
        resp = http.put(url, json={"flags": {"add": ["\\Seen", "\\Flagged"]}})
        assert resp.status_code == 200 and resp.json() == {"flags": {"add": True}}
        assert _uid_flags(dovecot, user, "INBOX", msg["uid"]) == {"\\Seen", "\\Flagged"}
        resp = http.put(url, json={"flags": {"delete": "\\Flagged"}})  # a single value works too
        assert resp.json() == {"flags": {"delete": True}}
        assert _uid_flags(dovecot, user, "INBOX", msg["uid"]) == {"\\Seen"}
        resp = http.put(url, json={"flags": {"set": ["$Label1", "\\Answered"]}})
        assert resp.json() == {"flags": {"set": True}}
        assert _uid_flags(dovecot, user, "INBOX", msg["uid"]) == {"$Label1", "\\Answered"}
        read = http.get(url).json()
        assert read["answered"] is True and read["unseen"] is True
        seen = http.get(url, params={"markAsSeen": True}).json()
        assert seen["unseen"] is False
        assert "\\Seen" in _uid_flags(dovecot, user, "INBOX", msg["uid"])
        assert http.put(url, json={"flags": {"add": ["bad flag"]}}).status_code == 400


def test_move_and_delete(mailgate: MailgateProcess, dovecot: Dovecot, fresh: Any) -> None:
    account, _user, messages = fresh(3)
    base = f"/v1/account/{account}"
    with mailgate.client() as http:
        moved = http.put(f"{base}/message/{messages[0]['id']}/move", json={"path": "Archive"})
        assert moved.status_code == 200, moved.text
        body = moved.json()
        assert body["path"] == "Archive" and body["uid"] >= 1 and body["id"] != messages[0]["id"]
        assert http.get(f"{base}/message/{body['id']}").json()["subject"] == messages[0]["subject"]
        gone = http.get(f"{base}/message/{messages[0]['id']}")
        assert gone.status_code == 404 and gone.json()["code"] == "MessageNotFound"
        assert (
            http.put(
                f"{base}/message/{messages[0]['id']}/move", json={"path": "Archive"}
            ).status_code
            == 404
        )

        trashed = http.delete(f"{base}/message/{messages[1]['id']}").json()
        assert trashed["deleted"] is False and trashed["moved"]["destination"] == "Trash"
        in_trash = trashed["moved"]["message"]
        assert http.get(f"{base}/message/{in_trash}").json()["path"] == "Trash"
        # deleting from Trash deletes for good
        assert http.delete(f"{base}/message/{in_trash}").json() == {"deleted": True}
        assert http.get(f"{base}/message/{in_trash}").status_code == 404

        forced = http.delete(f"{base}/message/{messages[2]['id']}", params={"force": True}).json()
        assert forced == {"deleted": True}
        assert http.get(f"{base}/messages", params={"path": "INBOX"}).json()["total"] == 0
        assert http.get(f"{base}/messages", params={"path": "Trash"}).json()["total"] == 0


def test_upload_raw_and_json(mailgate: MailgateProcess, dovecot: Dovecot, fresh: Any) -> None:
    account, _user, _ = fresh(0)
    base = f"/v1/account/{account}"
    raw = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: raw upload\r\nMessage-ID: <raw-up@example.test>\r\n\r\nHello raw\r\n"
    with mailgate.client() as http:
        resp = http.post(
            f"{base}/message",
            json={"path": "INBOX", "raw": base64.b64encode(raw).decode(), "flags": ["\\Seen"],
                  "internalDate": "2021-07-08T07:06:34.336Z"},
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        up = resp.json()
        assert up["path"] == "INBOX" and up["messageId"] == "<raw-up@example.test>"
        assert up["uid"] >= 1 and up["uidValidity"].isdigit()
        assert http.get(f"{base}/message/{up['id']}/source").content == raw
        read = http.get(f"{base}/message/{up['id']}").json()
        assert read["unseen"] is False and read["date"] == "2021-07-08T07:06:34.000Z"

        logo = b"GIF89a" + os.urandom(100)
        doc = os.urandom(2000)
        resp = http.post(
            f"{base}/message",
            json={
                "path": "\\Drafts",
                "from": {"name": "Mé", "address": "me@example.test"},
                "to": [{"name": "Yöu", "address": "you@example.test"}],
                "cc": {"address": "cc@example.test"},
                "bcc": [{"address": "hidden@example.test"}],
                "subject": "JSON upload ✓",
                "text": "Plain body ✓",
                "html": '<p>HTML body <img src="cid:logo1"></p>',
                "attachments": [
                    {"filename": "logo.gif", "contentType": "image/gif", "cid": "logo1",
                     "content": base64.b64encode(logo).decode()},
                    {"filename": "doc.bin", "content": base64.b64encode(doc).decode()},
                ],
                "headers": {"X-Test": "yes"},
                "flags": ["\\Draft"],
            },
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        up = resp.json()
        assert up["path"] == "Drafts" and up["messageId"].endswith("@example.test>")
        read = http.get(f"{base}/message/{up['id']}", params={"textType": "*"}).json()
        assert read["subject"] == "JSON upload ✓" and read["draft"] is True
        assert read["from"] == {"name": "Mé", "address": "me@example.test"}
        assert read["cc"] == [{"address": "cc@example.test"}]
        assert read["bcc"] == [{"address": "hidden@example.test"}]
        assert read["text"]["plain"].strip() == "Plain body ✓"
        assert read["headers"]["x-test"] == ["yes"]
        by_name = {a["filename"]: a for a in read["attachments"]}
        assert by_name["logo.gif"]["embedded"] is True
        assert http.get(f"{base}/attachment/{by_name['logo.gif']['id']}").content == logo
        assert http.get(f"{base}/attachment/{by_name['doc.bin']['id']}").content == doc

        bad = http.post(f"{base}/message", json={"path": "INBOX", "raw": "%%%"})
        assert bad.status_code == 400
        assert http.post(f"{base}/message", json={"raw": "eA=="}).status_code == 400


def test_bulk_routes(mailgate: MailgateProcess, dovecot: Dovecot, fresh: Any) -> None:
    account, user, messages = fresh(6)
    base = f"/v1/account/{account}"
    with mailgate.client() as http:
        resp = http.put(
            f"{base}/messages", params={"path": "INBOX"},
            json={"search": {"subject": "Change"}, "update": {"flags": {"add": ["\\Flagged"]}}},
        )  # fmt: skip
        assert resp.status_code == 200 and resp.json() == {"flags": {"add": True}}
        for m in messages:
            assert "\\Flagged" in _uid_flags(dovecot, user, "INBOX", m["uid"])

        low = [m for m in messages if m["subject"] in ("Change 0", "Change 1")]
        resp = http.put(
            f"{base}/messages/move", params={"path": "INBOX"},
            json={"search": {"uid": ",".join(str(m["uid"]) for m in low)}, "path": "Archive"},
        )  # fmt: skip
        body = resp.json()
        assert body["path"] == "Archive" and len(body["idMap"]) == 2
        assert {old for old, _ in body["idMap"]} == {m["id"] for m in low}
        for _, new in body["idMap"]:
            assert http.get(f"{base}/message/{new}").json()["path"] == "Archive"

        resp = http.put(
            f"{base}/messages/delete",
            params={"path": "INBOX"},
            json={"search": {"subject": "Change 2"}},
        )
        body = resp.json()
        assert body["deleted"] is False and body["moved"]["destination"] == "Trash"
        assert len(body["moved"]["idMap"]) == 1

        resp = http.put(
            f"{base}/messages/delete", params={"path": "INBOX", "force": True}, json={"search": {}}
        )
        assert resp.json() == {"deleted": True}
        assert http.get(f"{base}/messages", params={"path": "INBOX"}).json()["total"] == 0
        none = http.put(
            f"{base}/messages/delete", params={"path": "INBOX", "force": True}, json={"search": {}}
        )
        assert none.json() == {"deleted": False}


# ---- errors and concurrency ----------------------------------------------------------------


def test_not_found_ids(mailgate: MailgateProcess, loaded: Loaded, fresh: Any) -> None:
    base = f"/v1/account/{loaded.account}"
    other_account, _user, other_messages = fresh(1)
    with mailgate.client() as http:
        for garbage in ("x", "AAAAAQAAAAE=", "!!!!", "A" * 300, pack_message_id(9999, 1)):
            resp = http.get(f"{base}/message/{garbage}")
            assert resp.status_code == 404, (garbage, resp.text)
            assert resp.json()["code"] == "MessageNotFound"
        mailbox_no, uid = unpack_message_id(loaded.ids["plain"])
        for path in (f"message/{pack_message_id(mailbox_no, 999_999)}",
                     f"message/{pack_message_id(mailbox_no, 999_999)}/source",
                     f"attachment/{pack_attachment_id(mailbox_no, uid, '7')}",
                     f"attachment/{pack_attachment_id(mailbox_no, 999_999, '2')}",
                     "attachment/garbage", "text/garbage"):  # fmt: skip
            resp = http.get(f"{base}/{path}")
            assert resp.status_code == 404, (path, resp.text)
        # another account's id names nothing here (its mailbox number is its own)
        resp = http.get(f"/v1/account/{other_account}/message/{loaded.ids['mixed']}")
        assert resp.status_code == 404
        # the pool survived all of it
        assert http.get(f"{base}/message/{loaded.ids['plain']}").status_code == 200
        assert (
            http.get(
                f"/v1/account/nobody-{uuid.uuid4().hex}/message/{other_messages[0]['id']}"
            ).status_code
            == 404
        )


def test_parallel_reads(mailgate: MailgateProcess, loaded: Loaded) -> None:
    names = list(loaded.ids)

    async def run() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {mailgate.token}"}
        async with httpx.AsyncClient(
            base_url=mailgate.base_url, headers=headers, timeout=60
        ) as http:
            calls = [
                http.get(
                    f"/v1/account/{loaded.account}/message/{loaded.ids[names[i % len(names)]]}"
                )
                for i in range(10)
            ]
            return await asyncio.gather(*calls)

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 10
    assert [r.json()["id"] for r in responses] == [
        loaded.ids[names[i % len(names)]] for i in range(10)
    ]
