"""The fake Google is trusted only because Google's own Python client works against it.

Drives ``tests.fakes.google`` with google-api-python-client (``build`` with ``api_endpoint``
for ordinary methods; ``build_from_document`` with the shipped discovery document's
``rootUrl``/``batchPath`` replaced for media uploads and the batch endpoint, as TESTING-NOTES.md
explains) and google-auth (static tokens, refresh tokens, service-account JWT bearer grant).
"""

from __future__ import annotations

import base64
import email.utils
import io
import itertools
import json
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import google.oauth2.credentials
import googleapiclient
import httplib2
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build, build_from_document
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

from tests.fakes.google import MAIL_SCOPE, MODIFY_SCOPE, PUBSUB_SCOPE, FakeGoogle, fake_google

pytestmark = pytest.mark.integration

DOCS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
PACIFIC = ZoneInfo("America/Los_Angeles")
_counter = itertools.count(1)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGoogle]:
    with fake_google(quota_units_per_second=None, push_delay=0.05, pull_wait_seconds=1.0) as server:
        yield server


def new_user(fake: FakeGoogle, scopes: tuple[str, ...] = (MAIL_SCOPE,)) -> tuple[str, str]:
    address = f"user{next(_counter)}@example.test"
    return address, fake.add_user(address, scopes)


def creds(token: str) -> google.oauth2.credentials.Credentials:
    return google.oauth2.credentials.Credentials(token)


def gmail(fake: FakeGoogle, token: str) -> Any:
    """Ordinary methods: the static document, endpoint overridden."""
    return build(
        "gmail",
        "v1",
        credentials=creds(token),
        static_discovery=True,
        client_options={"api_endpoint": fake.url},
    )


def gmail_doc(fake: FakeGoogle, token: str) -> Any:
    """Media uploads and batch: the shipped document with rootUrl/batchPath replaced."""
    document = json.loads((DOCS / "gmail.v1.json").read_text())
    document["rootUrl"] = fake.url + "/"
    document["mtlsRootUrl"] = fake.url + "/"
    document["batchPath"] = "batch/gmail/v1"
    return build_from_document(document, credentials=creds(token))


def pubsub(fake: FakeGoogle, token: str) -> Any:
    return build(
        "pubsub",
        "v1",
        credentials=creds(token),
        static_discovery=True,
        client_options={"api_endpoint": fake.url},
    )


def make_mail(
    subject: str = "Hello",
    sender: str = "Bob <bob@example.org>",
    to: str = "someone@example.test",
    body: str = "Hello there.\n",
    *,
    msgid: str | None = None,
    reply_to: str | None = None,
    attachment: tuple[str, bytes] | None = None,
    cc: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = msgid or email.utils.make_msgid(domain="example.org")
    if reply_to:
        msg["In-Reply-To"] = reply_to
        msg["References"] = reply_to
    msg.set_content(body)
    if attachment:
        msg.add_attachment(
            attachment[1], maintype="application", subtype="octet-stream", filename=attachment[0]
        )
    return msg.as_bytes(policy=SMTP)


def error_of(exc: HttpError) -> dict[str, Any]:
    return json.loads(exc.content)["error"]


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_labels_crud_and_counters(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    service = gmail(fake, token)
    labels = service.users().labels().list(userId="me").execute()["labels"]
    ids = {label["id"] for label in labels}
    assert {"INBOX", "SENT", "DRAFT", "TRASH", "SPAM", "STARRED", "IMPORTANT", "UNREAD"} <= ids
    assert "CATEGORY_SOCIAL" in ids
    assert all(label["type"] == "system" for label in labels)

    created = (
        service.users()
        .labels()
        .create(
            userId="me",
            body={
                "name": "Projects/Alpha",
                "labelListVisibility": "labelShow",
                "messageListVisibility": "show",
            },
        )
        .execute()
    )
    assert created["id"].startswith("Label_") and created["type"] == "user"
    with pytest.raises(HttpError) as conflict:
        service.users().labels().create(userId="me", body={"name": "projects/alpha"}).execute()
    assert conflict.value.resp.status == 409
    with pytest.raises(HttpError) as reserved:
        service.users().labels().create(userId="me", body={"name": "INBOX"}).execute()
    assert reserved.value.resp.status == 400

    patched = (
        service.users()
        .labels()
        .patch(userId="me", id=created["id"], body={"name": "Projects/Beta"})
        .execute()
    )
    assert patched["name"] == "Projects/Beta"
    updated = (
        service.users()
        .labels()
        .update(
            userId="me",
            id=created["id"],
            body={"id": created["id"], "name": "Work", "labelListVisibility": "labelHide"},
        )
        .execute()
    )
    assert updated["name"] == "Work" and updated["labelListVisibility"] == "labelHide"

    first = fake.deliver(address, make_mail("one"), ["INBOX", "UNREAD", created["id"]])
    fake.deliver(address, make_mail("two"), ["INBOX", "UNREAD", created["id"]])
    fake.deliver(address, make_mail("three"), ["INBOX", created["id"]])
    work = service.users().labels().get(userId="me", id=created["id"]).execute()
    assert (
        work["messagesTotal"],
        work["messagesUnread"],
        work["threadsTotal"],
        work["threadsUnread"],
    ) == (3, 2, 3, 2)
    service.users().messages().trash(userId="me", id=first).execute()
    inbox = service.users().labels().get(userId="me", id="INBOX").execute()
    assert (inbox["messagesTotal"], inbox["messagesUnread"]) == (2, 1)
    trash = service.users().labels().get(userId="me", id="TRASH").execute()
    assert trash["messagesTotal"] == 1

    with pytest.raises(HttpError) as system_delete:
        service.users().labels().delete(userId="me", id="INBOX").execute()
    assert system_delete.value.resp.status == 400
    service.users().labels().delete(userId="me", id=created["id"]).execute()
    with pytest.raises(HttpError) as gone:
        service.users().labels().get(userId="me", id=created["id"]).execute()
    assert gone.value.resp.status == 404
    assert error_of(gone.value)["status"] == "NOT_FOUND"
    assert error_of(gone.value)["errors"][0]["reason"] == "notFound"


def test_insert_media_upload_then_raw_is_byte_identical(fake: FakeGoogle) -> None:
    _address, token = new_user(fake)
    service = gmail_doc(fake, token)
    ascii_raw = make_mail(
        "Upload ünïcode", body="Body with text\n", attachment=("data.bin", bytes(range(256)) * 4)
    )
    ascii_raw = ascii_raw.replace(b"Body with", b"Body  with\t trailing ")  # odd spacing survives
    # googleapiclient's multipart encoder only takes ASCII message/rfc822 bodies; the other
    # upload types carry raw 8-bit bytes.
    raw = ascii_raw.replace(b"Subject:", b"X-Eight-Bit: caf\xc3\xa9 \xff\r\nSubject:", 1)

    multipart = (
        service.users()
        .messages()
        .insert(
            userId="me",
            body={"labelIds": ["INBOX", "UNREAD"]},
            media_body=MediaIoBaseUpload(io.BytesIO(ascii_raw), mimetype="message/rfc822"),
        )
        .execute()
    )
    assert set(multipart["labelIds"]) == {"INBOX", "UNREAD"}
    media_only = (
        service.users()
        .messages()
        .insert(
            userId="me", media_body=MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822")
        )
        .execute()
    )
    resumable = (
        service.users()
        .messages()
        .import_(
            userId="me",
            body={"labelIds": ["INBOX"]},
            media_body=MediaIoBaseUpload(
                io.BytesIO(raw), mimetype="message/rfc822", resumable=True
            ),
        )
        .execute()
    )
    plain = (
        gmail(fake, token)
        .users()
        .messages()
        .insert(
            userId="me", body={"raw": base64.urlsafe_b64encode(raw).decode(), "labelIds": ["INBOX"]}
        )
        .execute()
    )

    for created, sent in (
        (multipart, ascii_raw),
        (media_only, raw),
        (resumable, raw),
        (plain, raw),
    ):
        got = service.users().messages().get(userId="me", id=created["id"], format="raw").execute()
        assert b64d(got["raw"]) == sent
        assert got["sizeEstimate"] == len(sent)
        assert "payload" not in got

    full = service.users().messages().get(userId="me", id=multipart["id"]).execute()
    payload = full["payload"]
    assert payload["partId"] == "" and payload["mimeType"] == "multipart/mixed"
    assert {"name": "Subject", "value": "Upload ünïcode"} in payload["headers"]
    text, attached = payload["parts"]
    assert text["partId"] == "0" and text["mimeType"] == "text/plain"
    assert b64d(text["body"]["data"]).decode().startswith("Body  with\t trailing")
    assert attached["filename"] == "data.bin" and attached["body"]["size"] == 1024
    assert "attachmentId" in attached["body"] and "data" not in attached["body"]
    assert full["snippet"].startswith("Body with trailing")

    meta = (
        service.users()
        .messages()
        .get(
            userId="me", id=multipart["id"], format="metadata", metadataHeaders=["Subject", "From"]
        )
        .execute()
    )
    assert sorted(h["name"] for h in meta["payload"]["headers"]) == ["From", "Subject"]
    minimal = (
        service.users().messages().get(userId="me", id=multipart["id"], format="minimal").execute()
    )
    assert "payload" not in minimal and minimal["threadId"] and minimal["historyId"]
    partial = (
        service.users()
        .messages()
        .get(userId="me", id=multipart["id"], fields="id,labelIds")
        .execute()
    )
    assert set(partial) == {"id", "labelIds"}


def test_list_with_q_and_paging(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    service = gmail(fake, token)

    def at(year: int, month: int, day: int, hour: int) -> int:
        return int(datetime(year, month, day, hour, tzinfo=PACIFIC).timestamp() * 1000)

    ids = {
        "early": fake.deliver(
            address,
            make_mail("Budget report", "Ann <ann@corp.example>"),
            internal_date_ms=at(2024, 3, 1, 0),
        ),
        "late": fake.deliver(
            address,
            make_mail("Lunch plans", "Carl <carl@corp.example>", body="pizza or sushi"),
            ["INBOX"],
            internal_date_ms=at(2024, 3, 2, 23),
        ),
        "big": fake.deliver(
            address,
            make_mail("Photos", attachment=("pic.jpg", b"x" * 30000)),
            internal_date_ms=at(2024, 3, 3, 12),
        ),
        "starred": fake.deliver(
            address,
            make_mail("Starred thing", msgid="<star-1@example.org>"),
            ["INBOX", "STARRED"],
            internal_date_ms=at(2024, 3, 4, 12),
        ),
        "spam": fake.deliver(
            address, make_mail("Buy pizza now"), ["SPAM"], internal_date_ms=at(2024, 3, 5, 12)
        ),
    }
    for n in range(6):
        fake.deliver(
            address,
            make_mail(f"Filler {n}", to="list@example.test"),
            internal_date_ms=at(2024, 2, 1, n),
        )

    def search(q: str, **kw: Any) -> set[str]:
        result = service.users().messages().list(userId="me", q=q, **kw).execute()
        return {m["id"] for m in result.get("messages", [])}

    assert search("from:ann@corp.example") == {ids["early"]}
    assert search("from:corp.example subject:lunch") == {ids["late"]}
    assert search("after:2024/03/02 before:2024/03/03") == {ids["late"]}
    assert search("after:2024/03/01 before:2024/03/02") == {ids["early"]}
    assert search("larger:20K") == {ids["big"]}
    assert search("has:attachment filename:jpg") == {ids["big"]}
    assert search("is:starred") == {ids["starred"]}
    assert search("rfc822msgid:<star-1@example.org>") == {ids["starred"]}
    assert search("pizza") == {ids["late"]}
    assert search("pizza", includeSpamTrash=True) == {ids["late"], ids["spam"]}
    assert search("in:spam") == {ids["spam"]}
    assert search("subject:(lunch) OR subject:photos") == {ids["late"], ids["big"]}
    assert ids["late"] not in search("is:unread")
    assert search('to:list@example.test -subject:"Filler 0"') == search(
        "to:list@example.test"
    ) - search('subject:"Filler 0"')
    assert len(search("to:list@example.test")) == 6
    label_ids = (
        service.users().messages().list(userId="me", labelIds=["INBOX", "STARRED"]).execute()
    )
    assert [m["id"] for m in label_ids["messages"]] == [ids["starred"]]

    seen: list[str] = []
    request = service.users().messages().list(userId="me", maxResults=3)
    pages = 0
    while request is not None:
        response = request.execute()
        pages += 1
        seen += [m["id"] for m in response.get("messages", [])]
        assert response["resultSizeEstimate"] != 10 or len(seen) != 10
        request = service.users().messages().list_next(request, response)
    assert pages == 4 and len(seen) == len(set(seen)) == 10  # spam excluded
    assert seen[0] == ids["starred"]  # newest first
    estimate = service.users().messages().list(userId="me").execute()["resultSizeEstimate"]
    assert estimate >= 10 and estimate != 10  # an estimate, deliberately not the count


def test_modify_and_batch_modify(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    service = gmail(fake, token)
    ids = [fake.deliver(address, make_mail(f"m{n}")) for n in range(4)]
    changed = (
        service.users()
        .messages()
        .modify(
            userId="me", id=ids[0], body={"addLabelIds": ["STARRED"], "removeLabelIds": ["UNREAD"]}
        )
        .execute()
    )
    assert set(changed["labelIds"]) == {"INBOX", "STARRED"}
    result = (
        service.users()
        .messages()
        .batchModify(
            userId="me",
            body={"ids": ids[1:], "addLabelIds": ["IMPORTANT"], "removeLabelIds": ["INBOX"]},
        )
        .execute()
    )
    assert not result
    for message_id in ids[1:]:
        got = service.users().messages().get(userId="me", id=message_id, format="minimal").execute()
        assert set(got["labelIds"]) == {"UNREAD", "IMPORTANT"}
    with pytest.raises(HttpError) as too_many:
        service.users().messages().batchModify(
            userId="me", body={"ids": ids * 251, "addLabelIds": ["STARRED"]}
        ).execute()
    assert too_many.value.resp.status == 400
    with pytest.raises(HttpError) as bad_label:
        service.users().messages().modify(
            userId="me", id=ids[0], body={"addLabelIds": ["Label_999"]}
        ).execute()
    assert bad_label.value.resp.status == 400


def test_history_after_changes_and_404_after_expiry(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    service = gmail(fake, token)
    start = int(service.users().getProfile(userId="me").execute()["historyId"])
    first = fake.deliver(address, make_mail("first"))
    second = fake.deliver(address, make_mail("second"))
    fake.modify_as_other_client(address, first, add=["STARRED"], remove=["UNREAD"])
    fake.delete_as_other_client(address, second)

    response = service.users().history().list(userId="me", startHistoryId=str(start)).execute()
    history = response["history"]
    record_ids = [int(r["id"]) for r in history]
    assert record_ids == sorted(record_ids) and record_ids[0] > start
    assert int(response["historyId"]) == record_ids[-1] == fake.history_id(address)
    added = [r["messagesAdded"][0]["message"]["id"] for r in history if "messagesAdded" in r]
    assert added == [first, second]
    labels_added = next(r for r in history if "labelsAdded" in r)["labelsAdded"][0]
    assert labels_added["labelIds"] == ["STARRED"] and labels_added["message"]["id"] == first
    assert next(r for r in history if "labelsRemoved" in r)["labelsRemoved"][0]["labelIds"] == [
        "UNREAD"
    ]
    assert (
        next(r for r in history if "messagesDeleted" in r)["messagesDeleted"][0]["message"]["id"]
        == second
    )

    only_added = (
        service.users()
        .history()
        .list(userId="me", startHistoryId=str(start), historyTypes=["messageAdded"])
        .execute()
    )
    assert all(set(r) == {"id", "messages", "messagesAdded"} for r in only_added["history"])
    starred = (
        service.users()
        .history()
        .list(userId="me", startHistoryId=str(start), labelId="STARRED")
        .execute()
    )
    assert [r["id"] for r in starred["history"]] == [str(record_ids[2])]

    paged: list[dict[str, Any]] = []
    request = service.users().history().list(userId="me", startHistoryId=str(start), maxResults=1)
    while request is not None:
        page = request.execute()
        paged += page.get("history", [])
        request = service.users().history().list_next(request, page)
    assert [r["id"] for r in paged] == [r["id"] for r in history]
    latest = (
        service.users().history().list(userId="me", startHistoryId=response["historyId"]).execute()
    )
    assert "history" not in latest and latest["historyId"] == response["historyId"]

    fake.expire_history(address)
    with pytest.raises(HttpError) as expired:
        service.users().history().list(userId="me", startHistoryId=str(start)).execute()
    assert expired.value.resp.status == 404
    body = error_of(expired.value)
    assert body["code"] == 404 and body["status"] == "NOT_FOUND"
    assert body["errors"][0] == {
        "message": "Requested entity was not found.",
        "domain": "global",
        "reason": "notFound",
    }
    current = service.users().getProfile(userId="me").execute()["historyId"]
    assert (
        "history"
        not in service.users().history().list(userId="me", startHistoryId=current).execute()
    )


def test_attachments_get(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    service = gmail(fake, token)
    content = b"%PDF-1.4 fake pdf \x00\xff" * 100
    message_id = fake.deliver(address, make_mail("Doc", attachment=("report.pdf", content)))
    first = service.users().messages().get(userId="me", id=message_id).execute()
    second = service.users().messages().get(userId="me", id=message_id).execute()
    id_one = first["payload"]["parts"][1]["body"]["attachmentId"]
    id_two = second["payload"]["parts"][1]["body"]["attachmentId"]
    assert id_one != id_two  # ids differ from one response to the next
    for attachment_id in (id_one, id_two):
        got = (
            service.users()
            .messages()
            .attachments()
            .get(userId="me", messageId=message_id, id=attachment_id)
            .execute()
        )
        assert got["size"] == len(content) and b64d(got["data"]) == content


def test_send_joins_thread(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    other, _ = new_user(fake)
    service = gmail(fake, token)
    original = fake.deliver(
        address,
        make_mail(
            "Quarterly plan", "Dana <dana@example.org>", address, msgid="<plan-1@example.org>"
        ),
    )
    thread_id = (
        service.users()
        .messages()
        .get(userId="me", id=original, format="minimal")
        .execute()["threadId"]
    )

    reply = make_mail(
        "Re: Quarterly plan",
        address,
        "dana@example.org",
        "Sounds good.",
        reply_to="<plan-1@example.org>",
    )
    sent = (
        service.users()
        .messages()
        .send(
            userId="me",
            body={"raw": base64.urlsafe_b64encode(reply).decode(), "threadId": thread_id},
        )
        .execute()
    )
    assert sent["threadId"] == thread_id and "SENT" in sent["labelIds"]
    assert fake.sent(address)[-1].endswith(reply)

    unrelated = make_mail(
        "Different topic", address, "dana@example.org", reply_to="<plan-1@example.org>"
    )
    other_thread = (
        service.users()
        .messages()
        .send(
            userId="me",
            body={"raw": base64.urlsafe_b64encode(unrelated).decode(), "threadId": thread_id},
        )
        .execute()
    )
    assert other_thread["threadId"] != thread_id

    answer = fake.deliver(
        address,
        make_mail(
            "RE: Quarterly plan",
            "Dana <dana@example.org>",
            address,
            reply_to="<plan-1@example.org>",
        ),
    )
    thread = service.users().threads().get(userId="me", id=thread_id, format="minimal").execute()
    assert [m["id"] for m in thread["messages"]] == [original, sent["id"], answer]
    threads = service.users().threads().list(userId="me", q="quarterly").execute()["threads"]
    assert threads[0]["id"] == thread_id

    bare = b"To: " + other.encode() + b"\r\nSubject: no headers\r\n\r\nhi\r\n"
    delivered = (
        service.users()
        .messages()
        .send(userId="me", body={"raw": base64.urlsafe_b64encode(bare).decode()})
        .execute()
    )
    stored = (
        service.users().messages().get(userId="me", id=delivered["id"], format="metadata").execute()
    )
    names = {h["name"] for h in stored["payload"]["headers"]}
    assert {"From", "Date", "Message-ID"} <= names
    assert fake.message_ids(other, "INBOX")  # recipient who is a user of the fake got it


def test_drafts(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    service = gmail(fake, token)
    raw = make_mail("Draft subject", address, "eve@example.org", "first version")
    draft = (
        service.users()
        .drafts()
        .create(userId="me", body={"message": {"raw": base64.urlsafe_b64encode(raw).decode()}})
        .execute()
    )
    assert draft["id"].startswith("r") and draft["message"]["labelIds"] == ["DRAFT"]
    listed = service.users().drafts().list(userId="me").execute()
    assert [d["id"] for d in listed["drafts"]] == [draft["id"]]
    got = service.users().drafts().get(userId="me", id=draft["id"], format="raw").execute()
    assert b64d(got["message"]["raw"]) == raw

    uploaded = (
        gmail_doc(fake, token)
        .users()
        .drafts()
        .update(
            userId="me",
            id=draft["id"],
            body={"id": draft["id"]},
            media_body=MediaIoBaseUpload(
                io.BytesIO(raw.replace(b"first", b"second")), mimetype="message/rfc822"
            ),
        )
        .execute()
    )
    assert uploaded["id"] == draft["id"] and uploaded["message"]["id"] != draft["message"]["id"]

    sent = service.users().drafts().send(userId="me", body={"id": draft["id"]}).execute()
    assert sent["labelIds"] == ["SENT"]
    assert b"second version" in fake.sent(address)[-1]
    with pytest.raises(HttpError) as gone:
        service.users().drafts().get(userId="me", id=draft["id"]).execute()
    assert gone.value.resp.status == 404

    doomed = (
        service.users()
        .drafts()
        .create(userId="me", body={"message": {"raw": base64.urlsafe_b64encode(raw).decode()}})
        .execute()
    )
    service.users().drafts().delete(userId="me", id=doomed["id"]).execute()
    assert "drafts" not in service.users().drafts().list(userId="me").execute()


def test_batch_of_gets(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    service = gmail_doc(fake, token)
    ids = [fake.deliver(address, make_mail(f"batch {n}")) for n in range(5)]
    results: dict[str, Any] = {}
    errors: dict[str, HttpError] = {}

    def callback(request_id: str, response: Any, exception: HttpError | None) -> None:
        if exception is not None:
            errors[request_id] = exception
        else:
            results[request_id] = response

    before = fake.stats(address)
    batch = service.new_batch_http_request(callback=callback)
    for message_id in ids:
        batch.add(
            service.users().messages().get(userId="me", id=message_id, format="metadata"),
            request_id=message_id,
        )
    batch.add(
        service.users().messages().get(userId="me", id="ffffffffffffffff"), request_id="missing"
    )
    batch.add(service.users().labels().get(userId="me", id="INBOX"), request_id="inbox")
    batch.execute()
    assert set(results) == {*ids, "inbox"}
    assert all(results[i]["id"] == i for i in ids)
    assert results["inbox"]["messagesTotal"] == 5
    assert errors["missing"].resp.status == 404
    after = fake.stats(address)
    assert after.method("messages.get").requests - before.method("messages.get").requests == 6
    assert after.units - before.units == 6 * 5 + 1  # each part is charged, the 404 too


def test_watch_and_pubsub_pull_ack(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    service = gmail(fake, token)
    ps = pubsub(
        fake, fake.issue_token("app@fake-project.iam.gserviceaccount.com", [PUBSUB_SCOPE])
    ).projects()
    topic = "projects/fake-project/topics/gmail-watch"
    subscription = "projects/fake-project/subscriptions/gmail-watch-sub"
    assert ps.topics().create(name=topic, body={}).execute()["name"] == topic
    with pytest.raises(HttpError) as exists:
        ps.topics().create(name=topic, body={}).execute()
    assert exists.value.resp.status == 409
    created = (
        ps.subscriptions()
        .create(name=subscription, body={"topic": topic, "ackDeadlineSeconds": 10})
        .execute()
    )
    assert (
        created["ackDeadlineSeconds"] == 10
        and ps.subscriptions().get(subscription=subscription).execute()["topic"] == topic
    )

    with pytest.raises(HttpError) as not_granted:
        service.users().watch(userId="me", body={"topicName": topic}).execute()
    assert not_granted.value.resp.status == 403
    policy = ps.topics().getIamPolicy(resource=topic).execute()
    policy["bindings"] = [
        {
            "role": "roles/pubsub.publisher",
            "members": ["serviceAccount:gmail-api-push@system.gserviceaccount.com"],
        }
    ]
    ps.topics().setIamPolicy(resource=topic, body={"policy": policy}).execute()
    assert ps.topics().getIamPolicy(resource=topic).execute()["bindings"] == policy["bindings"]

    watched = (
        service.users()
        .watch(userId="me", body={"topicName": topic, "labelIds": ["INBOX"]})
        .execute()
    )
    expiration_days = (int(watched["expiration"]) / 1000 - time.time()) / 86400
    assert 6.99 < expiration_days <= 7.0 and int(watched["historyId"]) == fake.history_id(address)

    for n in range(3):  # a burst: Gmail coalesces it
        fake.deliver(address, make_mail(f"burst {n}"))
    pulled = (
        ps.subscriptions()
        .pull(subscription=subscription, body={"maxMessages": 10, "returnImmediately": False})
        .execute()
    )
    received = pulled["receivedMessages"]
    assert len(received) == 1
    note = json.loads(base64.b64decode(received[0]["message"]["data"]))
    assert note == {"emailAddress": address, "historyId": fake.history_id(address)}
    ps.subscriptions().acknowledge(
        subscription=subscription, body={"ackIds": [received[0]["ackId"]]}
    ).execute()
    assert (
        ps.subscriptions()
        .pull(subscription=subscription, body={"maxMessages": 10, "returnImmediately": True})
        .execute()
        == {}
    )

    fake.deliver(address, make_mail("not watched"), ["SPAM"])  # outside the label filter
    time.sleep(0.15)
    assert (
        ps.subscriptions()
        .pull(subscription=subscription, body={"maxMessages": 10, "returnImmediately": True})
        .execute()
        == {}
    )

    fake.deliver(address, make_mail("again"))
    first = (
        ps.subscriptions()
        .pull(subscription=subscription, body={"maxMessages": 10})
        .execute()["receivedMessages"][0]
    )
    ps.subscriptions().modifyAckDeadline(
        subscription=subscription, body={"ackIds": [first["ackId"]], "ackDeadlineSeconds": 0}
    ).execute()
    second = (
        ps.subscriptions()
        .pull(subscription=subscription, body={"maxMessages": 10})
        .execute()["receivedMessages"][0]
    )
    assert (
        second["message"]["messageId"] == first["message"]["messageId"]
        and second["ackId"] != first["ackId"]
    )
    assert (
        ps.subscriptions()
        .pull(subscription=subscription, body={"maxMessages": 10, "returnImmediately": True})
        .execute()
        == {}
    )
    fake.advance_time(11)  # past the ack deadline: redelivered
    third = (
        ps.subscriptions()
        .pull(subscription=subscription, body={"maxMessages": 10, "returnImmediately": True})
        .execute()["receivedMessages"][0]
    )
    assert third["message"]["messageId"] == first["message"]["messageId"]
    ps.subscriptions().acknowledge(
        subscription=subscription, body={"ackIds": [third["ackId"]]}
    ).execute()

    service.users().stop(userId="me").execute()
    fake.deliver(address, make_mail("after stop"))
    time.sleep(0.15)
    assert (
        ps.subscriptions()
        .pull(subscription=subscription, body={"maxMessages": 10, "returnImmediately": True})
        .execute()
        == {}
    )
    ps.subscriptions().delete(subscription=subscription).execute()
    ps.topics().delete(topic=topic).execute()
    with pytest.raises(HttpError) as missing:
        ps.topics().get(topic=topic).execute()
    assert missing.value.resp.status == 404


def test_delete_needs_full_mail_scope(fake: FakeGoogle) -> None:
    address, token = new_user(fake, (MODIFY_SCOPE,))
    service = gmail(fake, token)
    message_id = fake.deliver(address, make_mail("keep"))
    for request in (
        service.users().messages().delete(userId="me", id=message_id),
        service.users().messages().batchDelete(userId="me", body={"ids": [message_id]}),
    ):
        with pytest.raises(HttpError) as denied:
            request.execute()
        assert denied.value.resp.status == 403
        body = error_of(denied.value)
        assert (
            body["status"] == "PERMISSION_DENIED"
            and body["errors"][0]["reason"] == "insufficientPermissions"
        )
        assert body["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert (
        "TRASH"
        in service.users().messages().trash(userId="me", id=message_id).execute()["labelIds"]
    )

    full = gmail(fake, fake.issue_token(address, [MAIL_SCOPE]))
    full.users().messages().delete(userId="me", id=message_id).execute()
    with pytest.raises(HttpError) as gone:
        full.users().messages().get(userId="me", id=message_id).execute()
    assert gone.value.resp.status == 404
    readonly = gmail(
        fake, fake.issue_token(address, ["https://www.googleapis.com/auth/gmail.readonly"])
    )
    with pytest.raises(HttpError) as no_write:
        readonly.users().labels().create(userId="me", body={"name": "x"}).execute()
    assert no_write.value.resp.status == 403


def test_429_with_retry_after_and_latency(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    service = gmail(fake, token)
    fake.fail_next(1, 429, address)
    with pytest.raises(HttpError) as injected:
        service.users().labels().list(userId="me").execute()
    assert injected.value.resp.status == 429 and injected.value.resp["retry-after"] == "1"
    assert error_of(injected.value)["errors"][0]["reason"] == "rateLimitExceeded"
    service.users().labels().list(userId="me").execute()

    fake.set_quota(1, burst_seconds=20)  # a 20-unit bucket refilled at 1 unit/s: 4 lists pass
    throttled: list[HttpError] = []
    try:
        for _ in range(12):
            try:
                service.users().messages().list(userId="me").execute()
            except HttpError as exc:
                throttled.append(exc)
    finally:
        fake.set_quota(None, burst_seconds=1)
    assert len(throttled) >= 7
    assert {e.resp.status for e in throttled} == {429, 403}
    for exc in throttled:
        assert int(exc.resp["retry-after"]) >= 1
        assert error_of(exc)["errors"][0]["reason"] == "userRateLimitExceeded"
    stats = fake.stats(address)
    assert stats.method("messages.list").throttled == len(throttled)
    assert stats.method("messages.list").units == 5 * (12 - len(throttled))
    assert stats.failed == 1 and stats.method("labels.list").units == 1

    fake.set_latency(0.05)
    try:
        started = time.monotonic()
        service.users().getProfile(userId="me").execute()
        assert time.monotonic() - started >= 0.05
    finally:
        fake.set_latency(0)


def test_401_without_or_with_expired_token(fake: FakeGoogle) -> None:
    address, token = new_user(fake)
    anonymous = build(
        "gmail",
        "v1",
        http=httplib2.Http(),
        static_discovery=True,
        client_options={"api_endpoint": fake.url},
    )
    with pytest.raises(HttpError) as missing:
        anonymous.users().getProfile(userId="me").execute()
    assert missing.value.resp.status == 401
    assert error_of(missing.value)["status"] == "UNAUTHENTICATED"
    assert error_of(missing.value)["errors"][0]["reason"] == "required"
    assert "www-authenticate" in missing.value.resp

    service = gmail(fake, token)
    assert service.users().getProfile(userId="me").execute()["emailAddress"] == address
    with pytest.raises(HttpError) as delegation:
        service.users().getProfile(userId="somebody-else@example.test").execute()
    assert delegation.value.resp.status == 403
    fake.expire_tokens(address)
    with pytest.raises(RefreshError):  # google-auth answers a 401 by refreshing: it cannot
        service.users().getProfile(userId="me").execute()
    request = anonymous.users().getProfile(userId="me")
    request.headers["authorization"] = f"Bearer {token}"
    with pytest.raises(HttpError) as expired:
        request.execute()
    assert expired.value.resp.status == 401
    assert error_of(expired.value)["errors"][0]["reason"] == "authError"


def test_service_account_jwt_bearer_with_subject(fake: FakeGoogle) -> None:
    address, _ = new_user(fake)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_email = "mailgate-sa@fake-project.iam.gserviceaccount.com"
    fake.add_service_account(client_email, key.public_key(), "key-1")
    info = {
        "type": "service_account",
        "project_id": "fake-project",
        "private_key_id": "key-1",
        "private_key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "client_email": client_email,
        "client_id": "1234567890",
        "token_uri": fake.token_uri,
    }
    delegated = service_account.Credentials.from_service_account_info(
        info, scopes=[MAIL_SCOPE]
    ).with_subject(address)
    service = build(
        "gmail",
        "v1",
        credentials=delegated,
        static_discovery=True,
        client_options={"api_endpoint": fake.url},
    )
    assert service.users().getProfile(userId="me").execute()["emailAddress"] == address
    assert delegated.token and delegated.token.startswith("ya29.")

    own = service_account.Credentials.from_service_account_info(info, scopes=[PUBSUB_SCOPE])
    ps = build(
        "pubsub",
        "v1",
        credentials=own,
        static_discovery=True,
        client_options={"api_endpoint": fake.url},
    )
    assert ps.projects().topics().list(project="projects/fake-project").execute() is not None

    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = dict(
        info,
        private_key=impostor.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
    bad = service_account.Credentials.from_service_account_info(
        forged, scopes=[MAIL_SCOPE]
    ).with_subject(address)
    with pytest.raises(RefreshError, match="invalid_grant"):
        build(
            "gmail",
            "v1",
            credentials=bad,
            static_discovery=True,
            client_options={"api_endpoint": fake.url},
        ).users().getProfile(userId="me").execute()
    unknown = service_account.Credentials.from_service_account_info(
        info, scopes=[MAIL_SCOPE]
    ).with_subject("nobody@example.test")
    with pytest.raises(RefreshError):
        build(
            "gmail",
            "v1",
            credentials=unknown,
            static_discovery=True,
            client_options={"api_endpoint": fake.url},
        ).users().getProfile(userId="me").execute()


def test_authorization_code_flow_refresh_and_revoke(fake: FakeGoogle) -> None:
    address, _ = new_user(fake)
    fake.add_client("web-app", "web-secret", ["http://127.0.0.1:9/callback"])
    params = {
        "client_id": "web-app",
        "redirect_uri": "http://127.0.0.1:9/callback",
        "response_type": "code",
        "scope": f"{MAIL_SCOPE} email",
        "state": "xyz",
        "access_type": "offline",
        "login_hint": address,
    }
    answer = httpx.get(f"{fake.url}/o/oauth2/v2/auth", params=params, follow_redirects=False)
    assert answer.status_code == 302
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.headers["location"]).query))
    assert query["state"] == "xyz" and query["code"]
    exchanged = httpx.post(
        fake.token_uri,
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": params["redirect_uri"],
            "client_id": "web-app",
            "client_secret": "web-secret",
        },
    ).json()
    assert exchanged["token_type"] == "Bearer" and exchanged["refresh_token"]
    reused = httpx.post(
        fake.token_uri,
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": params["redirect_uri"],
            "client_id": "web-app",
            "client_secret": "web-secret",
        },
    )
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"

    userinfo = httpx.get(
        f"{fake.url}/oauth2/v3/userinfo",
        headers={"Authorization": f"Bearer {exchanged['access_token']}"},
    ).json()
    assert userinfo["email"] == address and userinfo["email_verified"] is True

    refreshing = google.oauth2.credentials.Credentials(
        None,
        refresh_token=exchanged["refresh_token"],
        token_uri=fake.token_uri,
        client_id="web-app",
        client_secret="web-secret",
    )
    service = build(
        "gmail",
        "v1",
        credentials=refreshing,
        static_discovery=True,
        client_options={"api_endpoint": fake.url},
    )
    assert service.users().getProfile(userId="me").execute()["emailAddress"] == address
    assert refreshing.token and refreshing.token != exchanged["access_token"]

    assert (
        httpx.post(f"{fake.url}/revoke", data={"token": exchanged["refresh_token"]}).status_code
        == 200
    )
    with pytest.raises(RefreshError, match="invalid_grant"):  # 401, then the refresh fails
        service.users().getProfile(userId="me").execute()
    again = httpx.post(
        fake.token_uri,
        data={
            "grant_type": "refresh_token",
            "refresh_token": exchanged["refresh_token"],
            "client_id": "web-app",
            "client_secret": "web-secret",
        },
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
