"""Microsoft Graph accounts end to end: the running service against the fake Graph.

An OAuth2 app (provider ``outlook``, ``baseScopes: api``) points its ``apiUrl`` and ``tokenUrl``
at the fake; accounts carry a delegated token the fake issued. Checked: connection, folders,
listing, byte-identical source, attachments, flags/categories, ``\\Answered`` (the extended
property PidTagLastVerbExecuted), move (id kept), delete, threads across folders, search (to/cc
via KQL), upload, bulk, shared mailboxes, change events by delta (incl. an expired delta token →
mailboxReset), subscriptions (handshake, notifications, renewal on lifecycle events, removal when
the account goes) and 429 storms.

The subscription lifecycle (``missed`` catch-up, renewal before expiry), ``notifyText`` /
``notifyHeaders`` and flag changes by another client (``\\Answered`` included) run against a
private service (own Redis, ``resyncDelay`` of an hour so only a catch-up or a notification
explains an event, 8-second subscriptions so a renewal is seen quickly, ``notifyText`` on).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from mailgate.services.oauth2.tokens import iso_from_epoch
from tests.fakes.graph import FakeGraph, start_fake_graph
from tests.integration.helpers import account_events, wait_for, wait_state
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer, start_redis

pytestmark = pytest.mark.integration

#: The setting of the subscription lifetime (seconds), read by ``Config``.
LIFETIME_ENV = "MAILGATE_GRAPH_SUBSCRIPTION_LIFETIME"
#: PidTagLastVerbExecuted as the fake stores it (``\\Answered`` on Graph accounts).
LAST_VERB = "Integer 0x1081"
CLIENT_ID = "mailgate-graph-tests"
CLIENT_SECRET = "graph-secret-value-1234"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGraph]:
    graph = start_fake_graph()
    graph.add_app(CLIENT_ID, CLIENT_SECRET)
    yield graph
    graph.stop()


@pytest.fixture(scope="module")
def app_id(fake: FakeGraph, mailgate: MailgateProcess) -> str:
    with mailgate.client() as http:
        app = create_app(http, fake)
        set_service_url(http, mailgate)
        return app


def create_app(http: httpx.Client, fake: FakeGraph) -> str:
    resp = http.post(
        "/v1/oauth2",
        json={
            "name": "Graph tests",
            "provider": "outlook",
            "enabled": True,
            "baseScopes": "api",
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "apiUrl": fake.url,
            "tokenUrl": f"{fake.url}/common/oauth2/v2.0/token",
            "authorizationUrl": f"{fake.url}/common/oauth2/v2.0/authorize",
        },
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def set_service_url(http: httpx.Client, mailgate: MailgateProcess) -> None:
    resp = http.post("/v1/settings", json={"serviceUrl": mailgate.base_url})
    assert resp.status_code == 200, resp.text


def mime(subject: str, *, to: str = "alice@contoso.test", cc: str | None = None,
         attach: bytes | None = None, msgid: str | None = None,
         in_reply_to: str | None = None) -> bytes:  # fmt: skip
    msg = EmailMessage()
    msg["From"] = "Bob Sender <bob@example.test>"
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Message-ID"] = msgid or f"<{uuid.uuid4().hex}@example.test>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg["Date"] = "Mon, 01 Apr 2024 10:00:00 +0000"
    msg.set_content(f"Body of {subject}\n")
    if attach is not None:
        msg.add_attachment(attach, maintype="application", subtype="pdf", filename="doc.pdf")
    return msg.as_bytes()


def new_user(fake: FakeGraph) -> tuple[str, str]:
    upn = f"u{uuid.uuid4().hex[:8]}@contoso.test"
    return upn, fake.add_user(upn)


def register(http: httpx.Client, app_id: str, upn: str, token: str, **auth: str) -> str:
    account = f"g-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {
        "account": account,
        "name": "Graph account",
        "email": upn,
        "oauth2": {
            "provider": app_id,
            "auth": {"user": upn, **auth},
            "accessToken": token,
            "expires": iso_from_epoch(time.time() + 3000),
        },
    }
    resp = http.post("/v1/account", json=body)
    assert resp.status_code == 200, resp.text
    return account


def events_of(redis_server: RedisServer, account: str, name: str) -> list[dict[str, Any]]:
    return [e for e in account_events(redis_server.url, account) if e["event"] == name]


@pytest.fixture
def account(
    fake: FakeGraph, app_id: str, mailgate: MailgateProcess
) -> Iterator[tuple[str, str, httpx.Client]]:
    upn, token = new_user(fake)
    with mailgate.client() as http:
        acc = register(http, app_id, upn, token)
        wait_state(http, acc, "connected", timeout=30)
        yield acc, upn, http
        http.delete(f"/v1/account/{acc}")


def test_folders_listing_reading(fake: FakeGraph, account: tuple[str, str, httpx.Client]) -> None:
    acc, upn, http = account
    boxes = http.get(f"/v1/account/{acc}/mailboxes", params={"counters": "true"}).json()
    by_use = {b.get("specialUse"): b for b in boxes["mailboxes"]}
    assert by_use["\\Inbox"]["path"] == "INBOX"
    for use in ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"):
        assert use in by_use, use
    # create nested, rename, delete
    resp = http.post(f"/v1/account/{acc}/mailbox", json={"path": "INBOX/Receipts/2024"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] is True
    paths = {b["path"] for b in http.get(f"/v1/account/{acc}/mailboxes").json()["mailboxes"]}
    assert {"INBOX/Receipts", "INBOX/Receipts/2024"} <= paths
    resp = http.put(
        f"/v1/account/{acc}/mailbox",
        json={"path": "INBOX/Receipts/2024", "newPath": "INBOX/Receipts/Old"},
    )
    assert resp.status_code == 200, resp.text
    paths = {b["path"] for b in http.get(f"/v1/account/{acc}/mailboxes").json()["mailboxes"]}
    assert "INBOX/Receipts/Old" in paths and "INBOX/Receipts/2024" not in paths
    resp = http.delete(f"/v1/account/{acc}/mailbox", params={"path": "INBOX/Receipts/Old"})
    assert resp.status_code == 200, resp.text

    raws = [mime(f"Hello {i}", attach=b"%PDF-1.4 data" if i == 0 else None) for i in range(25)]
    ids = [fake.deliver(upn, r) for r in raws]
    page = http.get(f"/v1/account/{acc}/messages", params={"path": "INBOX", "pageSize": 20}).json()
    assert page["total"] == 25 and page["pages"] == 2 and len(page["messages"]) == 20
    page2 = http.get(
        f"/v1/account/{acc}/messages",
        params={"path": "INBOX", "pageSize": 20, "cursor": page["nextPageCursor"]},
    ).json()
    assert len(page2["messages"]) == 5
    listed = {m["id"] for m in page["messages"]} | {m["id"] for m in page2["messages"]}
    assert listed == set(ids)
    entry = next(m for m in page["messages"] + page2["messages"] if m["id"] == ids[0])
    assert entry["subject"] == "Hello 0" and entry["unseen"] is True
    assert entry["attachments"][0]["filename"] == "doc.pdf"

    # byte-identical source
    src = http.get(f"/v1/account/{acc}/message/{ids[0]}/source")
    assert src.status_code == 200 and src.content == raws[0]
    details = http.get(f"/v1/account/{acc}/message/{ids[0]}", params={"textType": "*"}).json()
    assert details["subject"] == "Hello 0"
    assert "Body of Hello 0" in details["text"]["plain"]
    att = details["attachments"][0]
    data = http.get(f"/v1/account/{acc}/attachment/{att['id']}")
    assert data.status_code == 200 and data.content == b"%PDF-1.4 data"
    text = http.get(f"/v1/account/{acc}/text/{details['text']['id']}").json()
    assert "Body of Hello 0" in text["plain"]

    # flags, categories, move (id kept), delete
    resp = http.put(
        f"/v1/account/{acc}/message/{ids[1]}",
        json={"flags": {"add": ["\\Seen", "\\Flagged"]}, "labels": {"add": ["Red"]}},
    )
    assert resp.status_code == 200, resp.text
    stored = fake.message(upn, ids[1])
    assert (
        stored.is_read and stored.flag["flagStatus"] == "flagged" and stored.categories == ["Red"]
    )
    moved = http.put(f"/v1/account/{acc}/message/{ids[1]}/move", json={"path": "\\Archive"}).json()
    assert moved["id"] == ids[1]
    again = http.get(f"/v1/account/{acc}/message/{ids[1]}").json()
    assert again["path"] == "Archive" and "\\Flagged" in again["flags"]
    resp = http.delete(f"/v1/account/{acc}/message/{ids[2]}")
    assert resp.json()["deleted"] is False
    assert fake.message(upn, ids[2]).folder_id == fake.folder_id(upn, "deleteditems")
    resp = http.delete(f"/v1/account/{acc}/message/{ids[3]}", params={"force": "true"})
    assert resp.json() == {"deleted": True}
    missing = http.get(f"/v1/account/{acc}/message/{ids[3]}")
    assert missing.status_code == 404 and missing.json()["code"] == "MessageNotFound"


def test_thread_search_upload_bulk(fake: FakeGraph, account: tuple[str, str, httpx.Client]) -> None:
    acc, upn, http = account
    root_id = "<root-thread@example.test>"
    first = fake.deliver(upn, mime("Thread start", msgid=root_id))
    reply = fake.deliver(upn, mime("Re: Thread start", in_reply_to=root_id), folder="archive")
    fake.deliver(upn, mime("Other", to="zed@example.test", cc="carol@example.test"))
    thread_id = fake.message(upn, first).conversation_id
    found = http.post(
        f"/v1/account/{acc}/search",
        params={"path": "INBOX"},
        json={"search": {"threadId": thread_id}},
    ).json()
    assert {m["id"] for m in found["messages"]} == {first, reply}
    assert {m["path"] for m in found["messages"]} == {"INBOX", "Archive"}
    by_cc = http.post(
        f"/v1/account/{acc}/search", params={"path": "INBOX"}, json={"search": {"cc": "carol"}}
    ).json()
    assert [m["subject"] for m in by_cc["messages"]] == ["Other"]
    by_to = http.post(
        f"/v1/account/{acc}/search",
        params={"path": "INBOX"},
        json={"search": {"to": "zed@example.test", "unseen": True}},
    ).json()
    assert [m["subject"] for m in by_to["messages"]] == ["Other"]
    bad = http.post(
        f"/v1/account/{acc}/search", params={"path": "INBOX"}, json={"search": {"larger": 10}}
    )
    assert bad.status_code == 400

    up = http.post(
        f"/v1/account/{acc}/message",
        json={
            "path": "INBOX",
            "flags": ["\\Seen"],
            "raw": base64.b64encode(mime("Uploaded")).decode(),
        },
    )
    assert up.status_code == 200, up.text
    assert fake.message(upn, up.json()["id"]).is_read
    # Graph keeps MIME uploads as drafts (isDraft is read-only in v1.0): reported as such
    uploaded = http.get(f"/v1/account/{acc}/message/{up.json()['id']}").json()
    assert uploaded["draft"] is True and "\\Draft" in uploaded["flags"]

    bulk = http.put(
        f"/v1/account/{acc}/messages",
        params={"path": "INBOX"},
        json={"search": {"unseen": True}, "update": {"flags": {"add": ["\\Seen"]}}},
    )
    assert bulk.status_code == 200, bulk.text
    unseen = http.post(
        f"/v1/account/{acc}/search", params={"path": "INBOX"}, json={"search": {"unseen": True}}
    ).json()
    assert unseen["total"] == 0


def last_verb_of(fake: FakeGraph, upn: str, mid: str) -> str | None:
    """PidTagLastVerbExecuted of a stored message (None: the message has none)."""
    with fake.lock:
        return fake.message(upn, mid).ext.get(LAST_VERB)


def listing_calls(fake: FakeGraph, upn: str) -> int:
    routes = fake.stats(upn)["routes"]
    return sum(n for route, n in routes.items() if route == "GET /mailFolders/{id}/messages")


def test_answered_flag_on_graph(fake: FakeGraph, account: tuple[str, str, httpx.Client]) -> None:
    """``\\Answered`` is PidTagLastVerbExecuted 102/103: listed and read with the message (in the
    same one call per page), set and cleared by the flags update, the upload and bulk updates;
    a forward (104) is not ``\\Answered`` and removing ``\\Answered`` leaves it alone."""
    acc, upn, http = account
    mid = fake.deliver(upn, mime("Answer me"))
    fwd = fake.deliver(upn, mime("Forward me"))
    fake.modify_as_other_client(upn, fwd, last_verb=104)  # forwarded from Outlook
    url = f"/v1/account/{acc}/message/{mid}"
    plain = http.get(url).json()
    assert "\\Answered" not in plain["flags"] and "answered" not in plain

    resp = http.put(url, json={"flags": {"add": ["\\Answered"]}})
    assert resp.status_code == 200 and resp.json() == {"flags": {"add": True}}, resp.text
    assert last_verb_of(fake, upn, mid) == "102"
    details = http.get(url).json()
    assert "\\Answered" in details["flags"] and details["answered"] is True

    before = listing_calls(fake, upn)
    page = http.get(f"/v1/account/{acc}/messages", params={"path": "INBOX"}).json()
    assert listing_calls(fake, upn) - before == 1
    listed = {m["id"]: m for m in page["messages"]}
    assert listed[mid]["flags"] == ["\\Answered"] and listed[mid]["answered"] is True
    assert listed[fwd]["flags"] == [] and "answered" not in listed[fwd]
    # a search Graph answers in two steps ($search, then the flag terms here) sees it too
    found = http.post(
        f"/v1/account/{acc}/search",
        params={"path": "INBOX"},
        json={"search": {"subject": "Answer me", "unseen": True}},
    ).json()
    assert [m["flags"] for m in found["messages"]] == [["\\Answered"]]

    # removing clears a reply, leaves a forward
    assert http.put(url, json={"flags": {"delete": ["\\Answered"]}}).status_code == 200
    assert last_verb_of(fake, upn, mid) == "0"
    assert "\\Answered" not in http.get(url).json()["flags"]
    fwd_url = f"/v1/account/{acc}/message/{fwd}"
    assert http.put(fwd_url, json={"flags": {"delete": ["\\Answered"]}}).status_code == 200
    assert last_verb_of(fake, upn, fwd) == "104"
    # set replaces every flag
    assert http.put(url, json={"flags": {"set": ["\\Seen", "\\Answered"]}}).status_code == 200
    assert last_verb_of(fake, upn, mid) == "102" and fake.message(upn, mid).is_read
    assert http.put(url, json={"flags": {"set": ["\\Seen"]}}).status_code == 200
    assert last_verb_of(fake, upn, mid) == "0"
    assert http.get(url).json()["flags"] == ["\\Seen"]

    # an upload with \\Answered, and bulk updates
    up = http.post(
        f"/v1/account/{acc}/message",
        json={
            "path": "INBOX",
            "flags": ["\\Answered"],
            "raw": base64.b64encode(mime("Answered upload")).decode(),
        },
    )
    assert up.status_code == 200, up.text
    assert last_verb_of(fake, upn, up.json()["id"]) == "102"
    bulk_url = f"/v1/account/{acc}/messages"
    only_fwd = {"subject": "Forward me"}
    resp = http.put(
        bulk_url,
        params={"path": "INBOX"},
        json={"search": only_fwd, "update": {"flags": {"delete": ["\\Answered"]}}},
    )
    assert resp.status_code == 200, resp.text
    assert last_verb_of(fake, upn, fwd) == "104"
    resp = http.put(
        bulk_url,
        params={"path": "INBOX"},
        json={"search": only_fwd, "update": {"flags": {"add": ["\\Answered"]}}},
    )
    assert resp.status_code == 200, resp.text
    assert last_verb_of(fake, upn, fwd) == "102"
    resp = http.put(
        bulk_url,
        params={"path": "INBOX"},
        json={"search": {"emailIds": [fwd]}, "update": {"flags": {"delete": ["\\Answered"]}}},
    )
    assert resp.status_code == 200, resp.text
    assert last_verb_of(fake, upn, fwd) == "0"


def test_search_answered_on_graph(fake: FakeGraph, account: tuple[str, str, httpx.Client]) -> None:
    """``answered`` searches Graph with a ``$filter`` on PidTagLastVerbExecuted: a reply (102, set
    through the API) and a reply all (103, sent from Outlook) are answered, a forward (104) and a
    message without the property are not; with text terms the same test runs on the ``$search``
    results, and a bulk update acts on exactly those messages."""
    acc, upn, http = account
    ids = {k: fake.deliver(upn, mime(f"Search {k}")) for k in ("marked", "all", "fwd", "plain")}
    resp = http.put(
        f"/v1/account/{acc}/message/{ids['marked']}", json={"flags": {"add": ["\\Answered"]}}
    )
    assert resp.status_code == 200, resp.text
    fake.modify_as_other_client(upn, ids["all"], last_verb=103)  # replied to all from Outlook
    fake.modify_as_other_client(upn, ids["fwd"], last_verb=104)  # forwarded from Outlook

    def search(query: dict[str, Any]) -> list[str]:
        resp = http.post(f"/v1/account/{acc}/search", params={"path": "INBOX"},
                         json={"search": query})  # fmt: skip
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["total"] == len(body["messages"])
        return sorted(m["id"] for m in body["messages"])

    answered = sorted([ids["marked"], ids["all"]])
    not_answered = sorted([ids["fwd"], ids["plain"]])
    assert search({"answered": True}) == answered
    assert search({"answered": False}) == not_answered
    assert search({"answered": True, "unseen": True}) == answered
    assert search({"answered": False, "seen": True}) == []
    # with text terms: $search first, the answered test on its results
    assert search({"subject": "Search", "answered": True}) == answered
    assert search({"subject": "Search", "answered": False}) == not_answered

    resp = http.put(
        f"/v1/account/{acc}/messages",
        params={"path": "INBOX"},
        json={"search": {"subject": "Search", "answered": True},
              "update": {"flags": {"add": ["\\Flagged"]}}},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    with fake.lock:
        flagged = sorted(k for k, mid in ids.items()
                         if fake.message(upn, mid).flag.get("flagStatus") == "flagged")  # fmt: skip
    assert flagged == ["all", "marked"]


def test_changes_by_delta_and_notifications(
    fake: FakeGraph, account: tuple[str, str, httpx.Client], redis_server: RedisServer
) -> None:
    acc, upn, http = account
    wait_for(lambda: events_of(redis_server, acc, "accountInitialized"), timeout=30)
    assert fake.subscriptions, "a subscription was created"
    # a notification reaches the service and becomes messageNew within a second or so
    start = time.monotonic()
    mid = fake.deliver(upn, mime("Pushed"))
    new = wait_for(lambda: [e for e in events_of(redis_server, acc, "messageNew")
                            if e["data"]["id"] == mid], timeout=10)  # fmt: skip
    assert time.monotonic() - start < 5
    assert new[0]["path"] == "INBOX" and new[0]["data"]["subject"] == "Pushed"
    fake.modify_as_other_client(upn, mid, is_read=True)
    upd = wait_for(lambda: events_of(redis_server, acc, "messageUpdated"), timeout=10)
    assert upd[0]["data"]["changes"]["flags"]["added"] == ["\\Seen"]
    fake.modify_as_other_client(upn, mid, move_to="archive")
    wait_for(lambda: events_of(redis_server, acc, "messageDeleted"), timeout=10)
    moved_new = wait_for(lambda: [e for e in events_of(redis_server, acc, "messageNew")
                                  if e["path"] == "Archive"], timeout=10)  # fmt: skip
    assert moved_new[0]["data"]["id"] == mid

    # an expired delta token: mailboxReset, never a flood of messageNew
    before = len(events_of(redis_server, acc, "messageNew"))
    fake.expire_delta_tokens(upn)
    http.put(f"/v1/account/{acc}/sync", json={"sync": True})
    wait_for(lambda: events_of(redis_server, acc, "mailboxReset"), timeout=10)
    time.sleep(1.0)
    assert len(events_of(redis_server, acc, "messageNew")) == before

    # lifecycle: removed subscription is created again
    sub_id = next(iter(fake.subscriptions))
    fake.trigger_lifecycle(sub_id, "subscriptionRemoved")
    wait_for(lambda: fake.subscriptions and sub_id not in fake.subscriptions, timeout=10)
    # account removal deletes the subscription
    http.delete(f"/v1/account/{acc}")
    wait_for(lambda: not fake.subscriptions, timeout=10)


def test_shared_mailbox_and_throttling(
    fake: FakeGraph, app_id: str, mailgate: MailgateProcess
) -> None:
    owner, token = new_user(fake)
    shared, _ = new_user(fake)
    fake.grant_access(owner, shared)
    mid = fake.deliver(shared, mime("For the team"))
    with mailgate.client() as http:
        acc = register(http, app_id, owner, token, delegatedUser=shared)
        wait_state(http, acc, "connected", timeout=30)
        fake.fail_next(6, 429, retry_after=1, upn=shared)
        page = http.get(f"/v1/account/{acc}/messages", params={"path": "INBOX"}).json()
        assert [m["id"] for m in page["messages"]] == [mid]
        assert fake.stats(shared)["max_concurrency"] <= 4
        http.delete(f"/v1/account/{acc}")


def test_send_through_graph_send_mail(
    fake: FakeGraph, account: tuple[str, str, httpx.Client], redis_server: RedisServer
) -> None:
    acc, upn, http = account
    resp = http.post(
        f"/v1/account/{acc}/submit",
        json={
            "from": {"address": upn},
            "to": [{"address": "carol@example.test"}],
            "subject": "sent over Graph",
            "text": "Hello from the outbox",
        },
    )
    assert resp.status_code == 200, resp.text
    message_id = resp.json()["messageId"]
    sent = wait_event_named(redis_server, acc, "messageSent")
    assert sent["data"]["messageId"] == message_id
    outbound = [m for m in fake.outbound if message_id.encode() in m.raw]
    assert len(outbound) == 1
    assert b"Hello from the outbox" in outbound[0].raw


def wait_event_named(redis_server: RedisServer, account: str, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: next(iter(events_of(redis_server, account, name)), None),
        timeout=30,
        what=f"{name} for {account}",
    )


def test_reply_by_reference_on_graph(
    fake: FakeGraph, account: tuple[str, str, httpx.Client], redis_server: RedisServer
) -> None:
    """``reference: {message, action: reply}`` reads the original through the Graph backend."""
    acc, upn, http = account
    original = mime("Graph question", to=upn)
    message_id = fake.deliver(upn, original)
    resp = http.post(
        f"/v1/account/{acc}/submit",
        json={
            "from": {"address": upn},
            "reference": {"message": message_id, "action": "reply"},
            "text": "graph reply by reference",
        },
    )
    assert resp.status_code == 200, resp.text
    wait_event_named(redis_server, acc, "messageSent")
    [sent] = [m for m in fake.outbound if b"graph reply by reference" in m.raw]
    original_header = next(
        line for line in original.split(b"\n") if line.lower().startswith(b"message-id:")
    )
    assert b"In-Reply-To: " + original_header.split(b":", 1)[1].strip() in sent.raw
    assert b"Subject: Re: Graph question" in sent.raw


def test_reply_by_reference_marks_the_original_answered(
    fake: FakeGraph, account: tuple[str, str, httpx.Client], redis_server: RedisServer
) -> None:
    """A reply sent through the outbox (``sendMail`` with MIME, which does not touch the
    original) marks the referenced message answered through the backend (PATCH of
    PidTagLastVerbExecuted), as it sets ``\\Answered`` over IMAP."""
    acc, upn, http = account
    original = fake.deliver(upn, mime("Answer by the outbox", to=upn))
    resp = http.post(
        f"/v1/account/{acc}/submit",
        json={
            "from": {"address": upn},
            "reference": {"message": original, "action": "reply-all"},
            "text": "answered through the outbox",
        },
    )
    assert resp.status_code == 200, resp.text
    wait_event_named(redis_server, acc, "messageSent")
    wait_for(
        lambda: last_verb_of(fake, upn, original) in ("102", "103"),
        timeout=10,
        what="the original marked answered",
    )
    flags = http.get(f"/v1/account/{acc}/message/{original}").json()["flags"]
    assert "\\Answered" in flags


# -- subscription lifecycle, notifyText / notifyHeaders, flags by another client -------------

#: Subscription lifetime of the private service (seconds): renewed a quarter before, at ~6 s.
SHORT_LIFETIME = 8


@pytest.fixture(scope="module")
def private(
    fake: FakeGraph, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MailgateProcess, RedisServer, str]]:
    """A service of its own: an hour's resyncDelay, short subscriptions, notifyText on."""
    redis = start_redis(tmp_path_factory.mktemp("graph-redis"))
    proc = MailgateProcess(
        tmp_path_factory.mktemp("graph-mailgate"),
        redis_url=redis.url,
        env={LIFETIME_ENV: str(SHORT_LIFETIME)},
    )
    try:
        proc.start()
        with proc.client() as http:
            app = create_app(http, fake)
            resp = http.post(
                "/v1/settings",
                json={
                    "serviceUrl": proc.base_url,
                    "resyncDelay": 3600,
                    "notifyText": True,
                    "notifyTextSize": 12,
                    "notifyHeaders": ["Subject", "X-Tracking"],
                },
            )
            assert resp.status_code == 200, resp.text
        yield proc, redis, app
    finally:
        proc.stop()
        redis.stop()


@pytest.fixture
def quiet(
    fake: FakeGraph, private: tuple[MailgateProcess, RedisServer, str]
) -> Iterator[tuple[str, str, httpx.Client, RedisServer]]:
    proc, redis, app = private
    upn, token = new_user(fake)
    with proc.client() as http:
        acc = register(http, app, upn, token)
        wait_state(http, acc, "connected", timeout=30)
        wait_for(lambda: events_of(redis, acc, "accountInitialized"), timeout=30)
        yield acc, upn, http, redis
        http.delete(f"/v1/account/{acc}")


def subscription_of(fake: FakeGraph, account: str) -> str:
    """The id of the (one) subscription whose notificationUrl is the account's."""

    def probe() -> list[str]:
        with fake.lock:
            subs = list(fake.subscriptions.values())
        return [s.id for s in subs if s.notification_url.endswith(f"/notifications/{account}")]

    found = wait_for(probe, timeout=10, what=f"subscription of {account}")
    assert len(found) == 1, found
    return found[0]


def new_event(redis_server: RedisServer, account: str, mid: str) -> dict[str, Any]:
    return wait_for(
        lambda: next(
            (e for e in events_of(redis_server, account, "messageNew") if e["data"]["id"] == mid),
            None,
        ),
        timeout=10,
        what=f"messageNew {mid}",
    )


def test_reauthorization_required_renews_the_subscription(
    fake: FakeGraph, account: tuple[str, str, httpx.Client]
) -> None:
    acc, _, _ = account
    sub_id = subscription_of(fake, acc)
    soon = datetime.now(UTC) + timedelta(hours=1)
    with fake.lock:
        fake.subscriptions[sub_id].expiration = soon
    fake.trigger_lifecycle(sub_id, "reauthorizationRequired")

    def renewed() -> bool:
        with fake.lock:
            sub = fake.subscriptions.get(sub_id)
            return sub is not None and sub.expiration > soon + timedelta(hours=12)

    wait_for(renewed, timeout=10, what="PATCH of the subscription")
    assert subscription_of(fake, acc) == sub_id  # renewed, not created again


def test_missed_notifications_caught_up_by_delta(
    fake: FakeGraph, quiet: tuple[str, str, httpx.Client, RedisServer]
) -> None:
    acc, upn, _, redis = quiet
    sub_id = subscription_of(fake, acc)
    with fake.lock:  # the notification of this delivery is lost
        sub = fake.subscriptions.pop(sub_id)
        lost = fake.deliver(upn, mime("Lost notification"))
        fake.subscriptions[sub_id] = sub
    time.sleep(1.5)
    assert not [e for e in events_of(redis, acc, "messageNew") if e["data"]["id"] == lost]
    start = time.monotonic()
    fake.trigger_lifecycle(sub_id, "missed")
    event = new_event(redis, acc, lost)
    assert time.monotonic() - start < 5  # the catch-up, not the hour's resync
    assert event["path"] == "INBOX" and event["data"]["subject"] == "Lost notification"


def test_subscription_renewed_before_expiry(
    fake: FakeGraph, quiet: tuple[str, str, httpx.Client, RedisServer]
) -> None:
    acc, upn, _, redis = quiet
    sub_id = subscription_of(fake, acc)
    with fake.lock:
        first = fake.subscriptions[sub_id].expiration
    assert first - datetime.now(UTC) <= timedelta(seconds=SHORT_LIFETIME + 1)
    passes = len(events_of(redis, acc, "messageNew"))

    def renewed() -> bool:
        with fake.lock:
            sub = fake.subscriptions.get(sub_id)
            return sub is not None and sub.expiration > first

    wait_for(renewed, timeout=SHORT_LIFETIME + 5, what="renewal before expiry")
    assert subscription_of(fake, acc) == sub_id
    # still notified after the first lifetime has passed
    time.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds()) + 0.5)
    mid = fake.deliver(upn, mime("After renewal"))
    new_event(redis, acc, mid)
    assert len(events_of(redis, acc, "messageNew")) == passes + 1


def rich_mime(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Bob Sender <bob@example.test>"
    msg["To"] = "alice@contoso.test"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    msg["X-Tracking"] = "abc  123"
    msg["X-Other"] = "not asked for"
    msg["Date"] = "Mon, 01 Apr 2024 10:00:00 +0000"
    msg.set_content("Plain text body that is long\n")
    msg.add_alternative("<p>HTML</p>\n", subtype="html")
    return msg.as_bytes()


def test_notify_text_and_headers(
    fake: FakeGraph, quiet: tuple[str, str, httpx.Client, RedisServer]
) -> None:
    acc, upn, http, redis = quiet
    mid = fake.deliver(upn, rich_mime("With text"))
    data = new_event(redis, acc, mid)["data"]
    assert data["headers"] == {"subject": ["With text"], "x-tracking": ["abc 123"]}
    text = data["text"]
    assert text["id"] == f"{mid}~text"
    assert text["plain"] == "Plain text b"  # notifyTextSize 12
    assert text["html"] == "<p>HTML</p>\n"
    assert text["hasMore"] is True

    # headers only: read from internetMessageHeaders, no text
    resp = http.post("/v1/settings", json={"notifyText": False})
    assert resp.status_code == 200, resp.text
    try:
        mid2 = fake.deliver(upn, rich_mime("Headers only"))
        data2 = new_event(redis, acc, mid2)["data"]
        assert data2["headers"] == {"subject": ["Headers only"], "x-tracking": ["abc 123"]}
        assert data2["text"] == {"id": f"{mid2}~text"}
    finally:
        http.post("/v1/settings", json={"notifyText": True})


def test_flag_changes_by_another_client(
    fake: FakeGraph, quiet: tuple[str, str, httpx.Client, RedisServer]
) -> None:
    acc, upn, _, redis = quiet
    mid = fake.deliver(upn, mime("Flag me"))
    new_event(redis, acc, mid)

    def nth_update(n: int) -> dict[str, Any]:
        found = wait_for(
            lambda: (
                [e for e in events_of(redis, acc, "messageUpdated") if e["data"]["id"] == mid]
                if len(events_of(redis, acc, "messageUpdated")) >= n
                else []
            ),
            timeout=10,
            what=f"messageUpdated #{n}",
        )
        assert len(found) == n, found
        return found[-1]

    fake.modify_as_other_client(upn, mid, is_read=True)
    seen = nth_update(1)
    assert seen["path"] == "INBOX" and seen["data"]["emailId"] == mid
    assert seen["data"]["changes"] == {"flags": {"added": ["\\Seen"], "value": ["\\Seen"]}}
    fake.modify_as_other_client(upn, mid, flag_status="flagged")
    flagged = nth_update(2)
    assert flagged["data"]["changes"]["flags"] == {
        "added": ["\\Flagged"],
        "value": ["\\Flagged", "\\Seen"],
    }
    fake.modify_as_other_client(upn, mid, is_read=False, flag_status="notFlagged")
    cleared = nth_update(3)
    assert cleared["data"]["changes"]["flags"] == {
        "deleted": ["\\Flagged", "\\Seen"],
        "value": [],
    }


def test_answered_changes_reported_by_sync(
    fake: FakeGraph, quiet: tuple[str, str, httpx.Client, RedisServer]
) -> None:
    """A reply sent from Outlook (PidTagLastVerbExecuted 102) is a ``messageUpdated`` adding
    ``\\Answered``; a later forward (104: the last verb is a forward) removes it; so does the
    API's flags update, seen through the notification of the PATCH."""
    acc, upn, http, redis = quiet
    mid = fake.deliver(upn, mime("Reply to me"))
    new_event(redis, acc, mid)

    def updates() -> list[dict[str, Any]]:
        return [e for e in events_of(redis, acc, "messageUpdated") if e["data"]["id"] == mid]

    def nth_update(n: int) -> dict[str, Any]:
        wait_for(lambda: len(updates()) >= n, timeout=10, what=f"messageUpdated #{n}")
        found = updates()
        assert len(found) == n, found
        return found[-1]

    fake.modify_as_other_client(upn, mid, last_verb=102)
    assert nth_update(1)["data"]["changes"] == {
        "flags": {"added": ["\\Answered"], "value": ["\\Answered"]}
    }
    fake.modify_as_other_client(upn, mid, last_verb=104)
    assert nth_update(2)["data"]["changes"] == {"flags": {"deleted": ["\\Answered"], "value": []}}
    resp = http.put(f"/v1/account/{acc}/message/{mid}", json={"flags": {"add": ["\\Answered"]}})
    assert resp.status_code == 200, resp.text
    assert nth_update(3)["data"]["changes"]["flags"]["added"] == ["\\Answered"]
