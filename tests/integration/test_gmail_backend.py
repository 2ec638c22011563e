"""Gmail API accounts end to end: the running service against the fake Google.

The app points every Google endpoint at the fake (``apiUrl``, ``tokenUrl``, ``pubSubUrl``);
accounts carry tokens the fake issued. Checks that what the API shows is what an IMAP account
would show (paging, byte-identical sources, events) and that the fake saw the Gmail calls the
design promises (counted with ``FakeGoogle.stats``).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_lib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailgate.backends.gmail.client import GmailClient
from mailgate.backends.gmail.index import GmailIndex
from mailgate.backends.gmail.labels import LabelCache
from mailgate.backends.gmail.quota import QuotaBudget
from mailgate.backends.gmail.sync import GmailSyncer, decode_bits
from mailgate.domain.sync import SyncOptions
from mailgate.services.oauth2.tokens import iso_from_epoch
from mailgate.store import keys
from mailgate.store.commit import Batch, Committer, LeaseLost
from mailgate.store.redis import connect, str_map
from tests.fakes.google import MAIL_SCOPE, MODIFY_SCOPE, FakeGoogle, start_fake_google
from tests.integration.helpers import account_events, wait_event, wait_for, wait_state
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer, start_redis

pytestmark = pytest.mark.integration

CLIENT_ID = "mailgate-test.apps.googleusercontent.com"
CLIENT_SECRET = "mailgate-test-secret"
RESYNC = 1  # seconds between history polls in these tests


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGoogle]:
    server = start_fake_google(quota_units_per_second=None, push_delay=0.05, pull_wait_seconds=1.0)
    server.add_client(CLIENT_ID, CLIENT_SECRET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MailgateProcess, RedisServer]]:
    redis = start_redis(tmp_path_factory.mktemp("gmail-redis"))
    proc = MailgateProcess(Path(tmp_path_factory.mktemp("gmail-mailgate")), redis_url=redis.url)
    proc.start()
    with proc.client() as http:
        assert http.post("/v1/settings", json={"resyncDelay": RESYNC}).status_code == 200
    yield proc, redis
    proc.stop()
    redis.stop()


@pytest.fixture(scope="module")
def app_id(service: tuple[MailgateProcess, RedisServer], fake: FakeGoogle) -> str:
    with service[0].client() as http:
        resp = http.post(
            "/v1/oauth2",
            json={
                "name": "Gmail API",
                "provider": "gmail",
                "baseScopes": "api",
                "enabled": True,
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
                "apiUrl": fake.url,
                "tokenUrl": fake.token_uri,
            },
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["id"])


def mail(subject: str, body: str = "hello", *, attachment: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.com>"
    msg["To"] = "someone@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    msg["Date"] = "Mon, 01 Jan 2024 10:00:00 +0000"
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream",
                           filename="data.bin")  # fmt: skip
    return msg.as_bytes().replace(b"\n", b"\r\n")


def add_account(
    http: httpx.Client,
    fake: FakeGoogle,
    app: str,
    *,
    scopes: tuple[str, ...] = (MODIFY_SCOPE,),
    **extra: Any,
) -> tuple[str, str]:
    email = f"u{uuid.uuid4().hex[:8]}@gmail.test"
    token = fake.add_user(email, scopes)
    account = f"gm-{uuid.uuid4().hex[:8]}"
    body = {
        "account": account,
        "name": "Gmail API test",
        "email": email,
        "oauth2": {
            "provider": app,
            "auth": {"user": email},
            "accessToken": token,
            "refreshToken": fake.issue_refresh_token(email, scopes, CLIENT_ID),
            "expires": iso_from_epoch(time.time() + 3000),
        },
        **extra,
    }
    resp = http.post("/v1/account", json=body)
    assert resp.status_code == 200, resp.text
    wait_state(http, account, "connected", timeout=30)
    return account, email


@pytest.fixture
def http(service: tuple[MailgateProcess, RedisServer]) -> Iterator[httpx.Client]:
    with service[0].client() as client:
        yield client


def events_of(
    service: tuple[MailgateProcess, RedisServer], account: str, name: str
) -> list[dict[str, Any]]:
    return [e for e in account_events(service[1].url, account) if e["event"] == name]


# -- mailboxes ---------------------------------------------------------------------------------
def test_connects_and_labels_are_mailboxes(
    http: httpx.Client, fake: FakeGoogle, app_id: str
) -> None:
    account, email = add_account(http, fake, app_id)
    fake.deliver(email, mail("counted"), ["INBOX", "UNREAD"])
    boxes = http.get(f"/v1/account/{account}/mailboxes", params={"counters": "true"}).json()
    by_path = {b["path"]: b for b in boxes["mailboxes"]}
    assert by_path["INBOX"]["specialUse"] == "\\Inbox"
    assert by_path["SENT"]["specialUse"] == "\\Sent"
    assert by_path["DRAFT"]["specialUse"] == "\\Drafts"
    assert by_path["TRASH"]["specialUse"] == "\\Trash"
    assert by_path["SPAM"]["specialUse"] == "\\Junk"
    assert by_path["STARRED"]["specialUse"] == "\\Flagged"
    assert by_path["IMPORTANT"]["specialUse"] == "\\Important"
    assert by_path["[Gmail]/All Mail"]["specialUse"] == "\\All"
    assert "UNREAD" not in by_path and "CHAT" not in by_path
    assert by_path["INBOX"]["status"] == {"messages": 1, "unseen": 1}

    resp = http.post(f"/v1/account/{account}/mailbox", json={"path": ["Work", "Projects"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["path"] == "Work/Projects" and resp.json()["created"] is True
    names = {lab.name for lab in fake.mailbox(email).labels.values()}
    assert "Work/Projects" in names
    boxes = http.get(f"/v1/account/{account}/mailboxes").json()["mailboxes"]
    nested = next(b for b in boxes if b["path"] == "Work/Projects")
    assert nested["parentPath"] == "Work" and nested["name"] == "Projects"
    assert nested["delimiter"] == "/"

    resp = http.put(
        f"/v1/account/{account}/mailbox", json={"path": "Work/Projects", "newPath": "Work/Done"}
    )
    assert resp.status_code == 200, resp.text
    names = {lab.name for lab in fake.mailbox(email).labels.values()}
    assert "Work/Done" in names and "Work/Projects" not in names
    resp = http.delete(f"/v1/account/{account}/mailbox", params={"path": "Work/Done"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["deleted"] is True
    assert "Work/Done" not in {lab.name for lab in fake.mailbox(email).labels.values()}
    assert (
        http.delete(f"/v1/account/{account}/mailbox", params={"path": "INBOX"}).status_code == 409
    )
    missing = http.get(f"/v1/account/{account}/messages", params={"path": "Nope"})
    assert missing.status_code == 404 and missing.json()["code"] == "MailboxNotFound"


# -- listing and reading -----------------------------------------------------------------------
def test_listing_pages_with_exact_totals_and_reads_byte_identical(
    http: httpx.Client, fake: FakeGoogle, app_id: str
) -> None:
    account, email = add_account(http, fake, app_id)
    raws = {}
    for n in range(25):
        raw = mail(f"message {n}")
        raws[
            fake.deliver(
                email, raw, ["INBOX", "UNREAD"], internal_date_ms=1_700_000_000_000 + n * 1000
            )
        ] = raw
    fake.deliver(email, mail("archived"), [])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"path": "INBOX", "pageSize": 10}
        if cursor:
            params["cursor"] = cursor
        page = http.get(f"/v1/account/{account}/messages", params=params).json()
        assert page["total"] == 25 and page["pages"] == 3 and page["page"] == pages
        seen += [m["id"] for m in page["messages"]]
        pages += 1
        cursor = page.get("nextPageCursor")
        if not cursor:
            break
    assert pages == 3 and len(seen) == 25 and set(seen) == set(raws)
    by_number = http.get(
        f"/v1/account/{account}/messages", params={"path": "INBOX", "pageSize": 10, "page": 2}
    ).json()
    assert [m["id"] for m in by_number["messages"]] == seen[20:]
    entry = by_number["messages"][0]
    assert entry["emailId"] == entry["id"] and entry["threadId"]
    assert entry["unseen"] is True and entry["flags"] == []
    assert entry["from"] == {"name": "Sender", "address": "sender@example.com"}
    assert entry["subject"].startswith("message ") and entry["path"] == "INBOX"
    assert entry["labels"] == ["\\Inbox"]
    every = http.get(f"/v1/account/{account}/messages", params={"path": "\\All"}).json()
    assert every["total"] == 26

    message = seen[0]
    source = http.get(f"/v1/account/{account}/message/{message}/source")
    assert source.status_code == 200 and source.content == raws[message]
    details = http.get(f"/v1/account/{account}/message/{message}", params={"textType": "*"}).json()
    assert details["id"] == message and details["subject"] == "message 24"
    assert details["text"]["plain"].strip() == "hello"
    text = http.get(f"/v1/account/{account}/text/{details['text']['id']}").json()
    assert text["plain"].strip() == "hello"
    gone = http.get(f"/v1/account/{account}/message/ffffffffffffffff")
    assert gone.status_code == 404 and gone.json()["code"] == "MessageNotFound"

    payload = bytes(range(256)) * 40
    with_file = fake.deliver(email, mail("attached", attachment=payload), ["INBOX"])
    details = http.get(f"/v1/account/{account}/message/{with_file}").json()
    [attachment] = details["attachments"]
    assert attachment["filename"] == "data.bin"
    before = fake.stats(email).method("messages.attachments.get").requests
    got = http.get(f"/v1/account/{account}/attachment/{attachment['id']}")
    assert got.status_code == 200 and got.content == payload
    assert fake.stats(email).method("messages.attachments.get").requests == before + 1


def test_listing_entries_carry_attachments_and_text_like_details(
    http: httpx.Client, fake: FakeGoogle, app_id: str
) -> None:
    account, email = add_account(http, fake, app_id)
    payload = bytes(range(256)) * 12
    message = fake.deliver(email, mail("with file", attachment=payload), ["INBOX"])
    plain = fake.deliver(email, mail("no file"), ["INBOX"])
    before = fake.stats(email).method("messages.get").requests
    listing = http.get(f"/v1/account/{account}/messages", params={"path": "INBOX"}).json()
    assert fake.stats(email).method("messages.get").requests == before + 2  # one get each
    entries = {m["id"]: m for m in listing["messages"]}
    entry, bare = entries[message], entries[plain]
    details = http.get(f"/v1/account/{account}/message/{message}").json()
    assert [a["id"] for a in entry["attachments"]] == [a["id"] for a in details["attachments"]]
    [listed] = entry["attachments"]
    [detailed] = details["attachments"]
    assert listed["filename"] == "data.bin" and listed["contentType"] == "application/octet-stream"
    assert abs(listed["encodedSize"] - detailed["encodedSize"]) <= 4  # estimated from Gmail's
    assert entry["text"]["id"] == details["text"]["id"]
    assert set(entry["text"]["encodedSize"]) == {"plain"}
    assert entry["preview"].startswith("hello")
    assert bare["attachments"] == [] and bare["text"]["id"]
    got = http.get(f"/v1/account/{account}/attachment/{listed['id']}")
    assert got.status_code == 200 and got.content == payload
    text = http.get(f"/v1/account/{account}/text/{entry['text']['id']}").json()
    assert text["plain"].strip() == "hello"


# -- flags, labels, move, delete -----------------------------------------------------------------
def test_flags_labels_move_and_delete(http: httpx.Client, fake: FakeGoogle, app_id: str) -> None:
    account, email = add_account(http, fake, app_id, scopes=(MODIFY_SCOPE, MAIL_SCOPE))
    box = fake.mailbox(email)
    first = fake.deliver(email, mail("one"))
    resp = http.put(
        f"/v1/account/{account}/message/{first}",
        json={"flags": {"add": ["\\Seen", "\\Flagged"]}, "labels": {"add": ["Custom"]}},
    )
    assert resp.status_code == 200, resp.text
    labels = set(box.messages[first].labels)
    assert "UNREAD" not in labels and "STARRED" in labels
    custom = next(lab.id for lab in box.labels.values() if lab.name == "Custom")
    assert custom in labels
    info = http.get(f"/v1/account/{account}/message/{first}").json()
    assert sorted(info["flags"]) == ["\\Flagged", "\\Seen"] and "Custom" in info["labels"]

    moved = http.put(f"/v1/account/{account}/message/{first}/move", json={"path": "Custom"})
    assert moved.status_code == 200 and moved.json() == {"path": "Custom", "id": first}
    assert "INBOX" not in box.messages[first].labels

    deleted = http.delete(f"/v1/account/{account}/message/{first}").json()
    assert deleted["deleted"] is False and deleted["moved"]["destination"] == "TRASH"
    assert "TRASH" in box.messages[first].labels
    assert http.delete(f"/v1/account/{account}/message/{first}").json() == {"deleted": True}
    assert first not in box.messages


def test_force_delete_needs_full_scope(http: httpx.Client, fake: FakeGoogle, app_id: str) -> None:
    account, email = add_account(http, fake, app_id)
    message = fake.deliver(email, mail("keep"))
    resp = http.delete(f"/v1/account/{account}/message/{message}", params={"force": "true"})
    assert resp.status_code == 403, resp.text
    assert message in fake.mailbox(email).messages


# -- search, upload, bulk --------------------------------------------------------------------------
def test_search_upload_and_bulk(http: httpx.Client, fake: FakeGoogle, app_id: str) -> None:
    account, email = add_account(http, fake, app_id)
    box = fake.mailbox(email)
    wanted = [fake.deliver(email, mail(f"invoice {n}")) for n in range(3)]
    fake.deliver(email, mail("newsletter"))
    found = http.post(
        f"/v1/account/{account}/search",
        params={"path": "INBOX"},
        json={"search": {"subject": "invoice", "unseen": True}},
    ).json()
    assert found["total"] == 3 and {m["id"] for m in found["messages"]} == set(wanted)
    raw = http.post(
        f"/v1/account/{account}/search",
        params={"path": "INBOX"},
        json={"search": {"gmailRaw": "subject:newsletter"}},
    ).json()
    assert raw["total"] == 1
    by_id = http.post(
        f"/v1/account/{account}/search",
        params={"path": "INBOX"},
        json={"search": {"emailId": wanted[0]}},
    ).json()
    assert [m["id"] for m in by_id["messages"]] == [wanted[0]]
    bad = http.post(
        f"/v1/account/{account}/search",
        params={"path": "INBOX"},
        json={"search": {"answered": True}},
    )
    assert bad.status_code == 400 and "answered" in bad.json()["message"]

    source = mail("uploaded")
    resp = http.post(
        f"/v1/account/{account}/message",
        json={"path": "INBOX", "flags": ["\\Seen"], "raw": base64.b64encode(source).decode()},
    )
    assert resp.status_code == 200, resp.text
    uploaded = resp.json()["id"]
    assert box.messages[uploaded].raw == source
    assert set(box.messages[uploaded].labels) == {"INBOX"}

    before = fake.stats(email).method("messages.batchModify").requests
    resp = http.put(
        f"/v1/account/{account}/messages",
        params={"path": "INBOX"},
        json={"search": {"subject": "invoice"}, "update": {"flags": {"add": ["\\Seen"]}}},
    )
    assert resp.status_code == 200, resp.text
    assert all("UNREAD" not in box.messages[m].labels for m in wanted)
    assert fake.stats(email).method("messages.batchModify").requests == before + 1
    resp = http.put(
        f"/v1/account/{account}/messages/delete",
        params={"path": "INBOX"},
        json={"search": {"subject": "invoice"}},
    )
    assert resp.status_code == 200 and resp.json()["deleted"] is False
    assert all("TRASH" in box.messages[m].labels for m in wanted)


# -- changes --------------------------------------------------------------------------------------
def test_changes_become_events_and_expired_history_resets(
    http: httpx.Client,
    fake: FakeGoogle,
    app_id: str,
    service: tuple[MailgateProcess, RedisServer],
) -> None:
    account, email = add_account(http, fake, app_id)
    redis_url = service[1].url
    wait_event(redis_url, account, "accountInitialized", timeout=30)
    message = fake.deliver(email, mail("fresh news"))
    new = wait_event(redis_url, account, "messageNew", where=lambda e: e["data"]["id"] == message)
    assert new["path"] == "INBOX" and new["specialUse"] == "\\Inbox"
    data = new["data"]
    assert data["emailId"] == message and data["subject"] == "fresh news"
    assert data["messageId"].startswith("<") and data["unseen"] is True

    fake.modify_as_other_client(email, message, remove=["UNREAD"])
    updated = wait_event(
        redis_url, account, "messageUpdated", where=lambda e: e["data"]["id"] == message
    )
    assert updated["data"]["changes"]["flags"]["added"] == ["\\Seen"]
    fake.modify_as_other_client(email, message, add=["STARRED"])
    wait_event(
        redis_url,
        account,
        "messageUpdated",
        where=lambda e: e["data"]["changes"].get("flags", {}).get("added") == ["\\Flagged"],
    )
    fake.delete_as_other_client(email, message)
    deleted = wait_event(
        redis_url, account, "messageDeleted", where=lambda e: e["data"]["id"] == message
    )
    assert deleted["path"] == "INBOX"

    for n in range(5):
        fake.deliver(email, mail(f"before reset {n}"))
    wait_for(lambda: len(events_of(service, account, "messageNew")) == 6, what="5 more messageNew")
    # a change the service has not seen yet, then Google forgets the history behind it: the
    # stored history id is gone (404); the change is in the new baseline, not in an event
    fake.deliver(email, mail("inside the reset"))
    fake.expire_history(email)
    reset = wait_event(redis_url, account, "mailboxReset", where=lambda e: e["path"] == "INBOX")
    assert reset["data"]["path"] == "INBOX"
    time.sleep(RESYNC * 3)
    assert len(events_of(service, account, "messageNew")) == 6
    later = fake.deliver(email, mail("after baseline"))
    wait_event(redis_url, account, "messageNew", where=lambda e: e["data"]["id"] == later)
    ids = [e["data"]["id"] for e in events_of(service, account, "messageNew")]
    assert len(ids) == len(set(ids)) == 7


class _Tokens:
    def __init__(self, user: str, token: str) -> None:
        self.user, self.token = user, token

    async def access_token(self, account: str, *, refused: str | None = None) -> tuple[str, str]:
        return self.user, self.token


class _DiesAfter(Committer):
    """A committer whose lease is lost after ``limit`` commits (the process stops there)."""

    def __init__(self, redis: Any, account: str, limit: int) -> None:
        super().__init__(redis, account, None)
        self.limit = limit

    async def commit(self, batch: Batch) -> None:
        if self.limit <= 0:
            raise LeaseLost("lease moved (test)")
        self.limit -= 1
        await super().commit(batch)


async def test_first_index_resumes_from_the_last_page_committed(
    fake: FakeGoogle, service: tuple[MailgateProcess, RedisServer]
) -> None:
    email = f"u{uuid.uuid4().hex[:8]}@gmail.test"
    tokens = _Tokens(email, fake.add_user(email, (MODIFY_SCOPE,)))
    box = fake.mailbox(email)
    work = box.create_label({"name": "Work"}).id
    for n in range(40):
        labels = ["INBOX"] + (["UNREAD"] if n % 2 else []) + ([work] if n % 5 == 0 else [])
        fake.deliver(email, mail(f"m{n}"), labels, internal_date_ms=1_700_000_000_000 + n)
    redis = connect(service[1].url)
    options = SyncOptions(indexer="full")

    def syncer(account: str, committer: Committer) -> GmailSyncer:
        client = GmailClient(account, tokens, fake.url, budget=QuotaBudget())

        async def fetch_labels() -> list[dict[str, Any]]:
            return list((await client.request("labels.list", "GET", "labels"))["labels"])

        return GmailSyncer(account, client, LabelCache(fetch_labels), redis, committer,
                           options, page_size=5)  # fmt: skip

    def list_calls() -> int:
        return fake.stats(email).method("messages.list").requests

    try:
        # what a whole first index costs, on an account of its own
        before = list_calls()
        reference = f"gm-ref-{uuid.uuid4().hex[:8]}"
        await syncer(reference, Committer(redis, reference, None)).run_pass()
        whole = list_calls() - before

        account = f"gm-resume-{uuid.uuid4().hex[:8]}"
        with pytest.raises(LeaseLost):  # dies after the start and 6 pages
            await syncer(account, _DiesAfter(redis, account, 7)).run_pass()
        state = str_map(await redis.hgetall(keys.gmail_state(account)))
        assert "historyId" not in state  # not indexed yet...
        progress = str_map(await redis.hgetall(keys.gmail_baseline(account)))
        assert any(k.startswith(("t:", "d:")) for k in progress)  # ...but 6 pages are kept
        late = fake.deliver(email, mail("during the index"), ["INBOX", work])

        before = list_calls()
        resumed = syncer(account, Committer(redis, account, None))
        await resumed.run_pass()
        assert list_calls() - before <= whole - 6 + 1  # committed pages are not listed again
        assert not await redis.exists(keys.gmail_baseline(account))
        assert not await redis.exists(keys.gmail_baseline_stage(account))
        state = str_map(await redis.hgetall(keys.gmail_state(account)))
        assert int(state["historyId"]) >= int(progress["historyId"])

        truth = {m.id: set(m.labels) for m in box.messages.values()}
        assert late in truth
        index = GmailIndex(account, resumed.chunk_bits or 0)
        found = await index.lookup(redis, list(truth))
        bits = resumed.bits.bits
        for message_id, labels in truth.items():
            value = found[message_id]
            assert value is not None, message_id
            assert set(decode_bits(value, bits)) == {x for x in labels if not x.startswith("CAT")}
        initialized = [
            e for e in account_events(service[1].url, account) if e["event"] == "accountInitialized"
        ]
        assert len(initialized) == 1
        # mail that arrived after the first index began is announced once, the rest never
        announced = [
            e["data"]["id"]
            for e in account_events(service[1].url, account)
            if e["event"] == "messageNew"
        ]
        assert announced == [late]
    finally:
        await redis.aclose()


def test_fast_indexer_reports_new_mail_only(
    http: httpx.Client,
    fake: FakeGoogle,
    app_id: str,
    service: tuple[MailgateProcess, RedisServer],
) -> None:
    account, email = add_account(http, fake, app_id, imapIndexer="fast")
    redis_url = service[1].url
    wait_event(redis_url, account, "accountInitialized", timeout=30)
    message = fake.deliver(email, mail("fast one"))
    wait_event(redis_url, account, "messageNew", where=lambda e: e["data"]["id"] == message)
    fake.modify_as_other_client(email, message, remove=["UNREAD"])
    fake.delete_as_other_client(email, message)
    second = fake.deliver(email, mail("fast two"))
    wait_event(redis_url, account, "messageNew", where=lambda e: e["data"]["id"] == second)
    assert not events_of(service, account, "messageUpdated")
    assert not events_of(service, account, "messageDeleted")


def test_label_changes_become_mailbox_events(
    http: httpx.Client,
    fake: FakeGoogle,
    app_id: str,
    service: tuple[MailgateProcess, RedisServer],
) -> None:
    account, _email = add_account(http, fake, app_id)
    redis_url = service[1].url
    wait_event(redis_url, account, "accountInitialized", timeout=30)
    time.sleep(RESYNC * 2)
    http.post(f"/v1/account/{account}/mailbox", json={"path": "Receipts"})
    created = wait_event(redis_url, account, "mailboxNew", where=lambda e: e["path"] == "Receipts")
    assert created["data"]["mailboxId"].startswith("Label_")
    http.delete(f"/v1/account/{account}/mailbox", params={"path": "Receipts"})
    wait_event(redis_url, account, "mailboxDeleted", where=lambda e: e["path"] == "Receipts")


def _rsa_pem() -> tuple[str, rsa.RSAPublicKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


# -- push ---------------------------------------------------------------------------------------
def test_pubsub_push_delivers_and_acks_after_commit(
    http: httpx.Client,
    fake: FakeGoogle,
    service: tuple[MailgateProcess, RedisServer],
) -> None:
    pem, public = _rsa_pem()
    client_email = f"mailgate-{uuid.uuid4().hex[:6]}@fake-project.iam.gserviceaccount.com"
    fake.add_service_account(client_email, public)
    resp = http.post(
        "/v1/oauth2",
        json={
            "name": "Pub/Sub",
            "provider": "gmailService",
            "baseScopes": "pubsub",
            "enabled": True,
            "serviceClientEmail": client_email,
            "serviceKey": pem,
            "googleProjectId": "fake-project",
            "googleTopicName": "mg-push",
            "googleSubscriptionName": "mg-push-sub",
            "tokenUrl": fake.token_uri,
            "pubSubUrl": fake.url,
        },
    )
    assert resp.status_code == 200, resp.text
    pubsub_app = resp.json()["id"]
    resp = http.post(
        "/v1/oauth2",
        json={
            "name": "Gmail API with push",
            "provider": "gmail",
            "baseScopes": "api",
            "enabled": True,
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "apiUrl": fake.url,
            "tokenUrl": fake.token_uri,
            "pubSubApp": pubsub_app,
        },
    )
    assert resp.status_code == 200, resp.text
    push_app = resp.json()["id"]
    # no polling to speak of: only a push can bring the change in time
    assert http.post("/v1/settings", json={"resyncDelay": 600}).status_code == 200
    try:
        account, email = add_account(http, fake, push_app)
    finally:
        http.post("/v1/settings", json={"resyncDelay": RESYNC})
    redis_url = service[1].url
    wait_event(redis_url, account, "accountInitialized", timeout=30)
    wait_for(lambda: fake.mailbox(email).watch is not None, what="users.watch")
    assert fake.mailbox(email).watch.topic == "projects/fake-project/topics/mg-push"
    started = time.monotonic()
    message = fake.deliver(email, mail("pushed"))
    wait_event(redis_url, account, "messageNew", where=lambda e: e["data"]["id"] == message)
    assert time.monotonic() - started < 15
    subscription = fake.pubsub.subscriptions["projects/fake-project/subscriptions/mg-push-sub"]
    wait_for(lambda: not subscription.backlog, what="the notification acknowledged")
    status = http.get("/v1/pubsub/status").json()
    entry = next(a for a in status["apps"] if a["id"] == pubsub_app)
    assert entry["subscription"]["received"] >= 1
    assert (
        entry["subscription"]["subscription"] == "projects/fake-project/subscriptions/mg-push-sub"
    )
    assert entry["pubSubError"] is None

    # deleting the account stops its watch and forgets its Pub/Sub route
    routes = f"mg:{{mg}}:gm:pubsub:routes:{pubsub_app}"
    with redis_lib.Redis.from_url(redis_url) as redis_client:
        assert redis_client.hget(routes, email) == account.encode()
        stops = fake.stats(email).method("stop").requests
        assert http.delete(f"/v1/account/{account}").status_code == 200
        wait_for(lambda: fake.mailbox(email).watch is None, what="users.stop")
        wait_for(lambda: redis_client.hget(routes, email) is None, what="route dropped")
    assert fake.stats(email).method("stop").requests == stops + 1


# -- sending --------------------------------------------------------------------------------------
def test_submit_sends_through_messages_send_in_the_thread(
    http: httpx.Client,
    fake: FakeGoogle,
    app_id: str,
    service: tuple[MailgateProcess, RedisServer],
) -> None:
    account, email = add_account(http, fake, app_id)
    original = mail("Question")
    incoming = fake.deliver(email, original)
    box = fake.mailbox(email)
    original_id = box.messages[incoming].message_id()
    resp = http.post(
        f"/v1/account/{account}/submit",
        json={
            "from": {"address": email},
            "to": [{"address": "sender@example.com"}],
            "subject": "Re: Question",
            "text": "the answer",
            "headers": {"In-Reply-To": original_id, "References": original_id},
        },
    )
    assert resp.status_code == 200, resp.text
    sent_event = wait_event(service[1].url, account, "messageSent", timeout=30)
    assert sent_event["data"]["response"].startswith("250 ")
    [raw] = fake.sent(email)
    assert b"the answer" in raw
    sent_id = next(m.id for m in box.messages.values() if "SENT" in m.labels)
    assert box.messages[sent_id].thread_id == box.messages[incoming].thread_id
    assert fake.stats(email).method("messages.send").requests == 1
    assert not events_of(service, account, "messageFailed")


# -- throttling --------------------------------------------------------------------------------
def test_rate_limit_storm_loses_and_repeats_nothing(
    http: httpx.Client,
    fake: FakeGoogle,
    app_id: str,
    service: tuple[MailgateProcess, RedisServer],
) -> None:
    account, email = add_account(http, fake, app_id)
    redis_url = service[1].url
    wait_event(redis_url, account, "accountInitialized", timeout=30)
    fake.fail_next(4, 429, email)
    fake.fail_next(2, 403, email)
    fake.fail_next(1, 503, email)
    delivered = [fake.deliver(email, mail(f"storm {n}")) for n in range(12)]
    listing = http.get(f"/v1/account/{account}/messages", params={"path": "INBOX"}, timeout=60)
    assert listing.status_code == 200, listing.text
    assert listing.json()["total"] == 12
    wait_for(
        lambda: (
            {e["data"]["id"] for e in events_of(service, account, "messageNew")} == set(delivered)
        ),
        timeout=60,
        what="every message announced",
    )
    time.sleep(RESYNC * 3)
    ids = [e["data"]["id"] for e in events_of(service, account, "messageNew")]
    assert sorted(ids) == sorted(delivered)  # none lost, none twice
    stats = fake.stats(email)
    assert stats.failed >= 7


def test_reply_by_reference_threads_on_gmail(
    http: httpx.Client,
    fake: FakeGoogle,
    app_id: str,
    service: tuple[MailgateProcess, RedisServer],
) -> None:
    """``reference: {message, action: reply}`` reads the original through the Gmail backend."""
    account, email = add_account(http, fake, app_id)
    incoming = fake.deliver(email, mail("Referenced question"))
    original_id = fake.mailbox(email).messages[incoming].message_id()
    resp = http.post(
        f"/v1/account/{account}/submit",
        json={
            "from": {"address": email},
            "reference": {"message": incoming, "action": "reply"},
            "text": "replying by reference",
        },
    )
    assert resp.status_code == 200, resp.text
    wait_event(service[1].url, account, "messageSent", timeout=30)
    [raw] = [r for r in fake.sent(email) if b"replying by reference" in r]
    assert f"In-Reply-To: {original_id}".encode() in raw
    assert b"Subject: Re: Referenced question" in raw
