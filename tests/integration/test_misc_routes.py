"""EmailEngine's smaller operations over HTTP against the running service, a real Dovecot and a
real Redis: licence, autoconfig, change stream, account logs, token audit log, webhook routes,
blocklists, server signatures, delivery tests, exports and the Document Store stubs."""

from __future__ import annotations

import gzip
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import redis.cluster

from tests.conftest import MailUser
from tests.integration.helpers import imap_account, wait_for, wait_state
from tests.servers.dovecot import Dovecot
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer, sync_client
from tests.servers.smtp import SmtpCapture

pytestmark = pytest.mark.integration


def register(http: httpx.Client, dovecot: Dovecot, user: MailUser, **extra: Any) -> str:
    account = f"misc-{uuid.uuid4().hex[:8]}"
    body = imap_account(account, user.name, user.password, dovecot.host, dovecot.imap_port, **extra)
    resp = http.post("/v1/account", json=body)
    assert resp.status_code == 200, resp.text
    wait_state(http, account, "connected")
    return account


def message(subject: str, message_id: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.test>"
    msg["To"] = "rcpt@example.test"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@example.test>"
    msg.set_content(f"Body of {subject}\n")
    return msg.as_bytes()


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()
    assert body["statusCode"] == resp.status_code
    return body


# ---- licence, autoconfig, signatures, deprecated --------------------------------------------


def test_license_routes(mailgate: MailgateProcess) -> None:
    with mailgate.client() as http:
        info = http.get("/v1/license").json()
        assert info["active"] is True and info["type"] == "MIT" and info["suspended"] is False
        posted = http.post("/v1/license", json={"license": "-----BEGIN LICENSE-----\nx"})
        assert posted.status_code == 200 and posted.json()["active"] is True
        assert http.post("/v1/license", json={}).status_code == 400
        removed = http.delete("/v1/license").json()
        assert removed["active"] is False and removed["details"] is False
        assert http.get("/v1/license").json()["active"] is True  # nothing was removed
    with httpx.Client(base_url=mailgate.base_url) as anonymous:
        assert anonymous.get("/v1/license").status_code == 401


def test_autoconfig_route(mailgate: MailgateProcess) -> None:
    with mailgate.client() as http:
        gmail = http.get("/v1/autoconfig", params={"email": "me@gmail.com"}).json()
        assert gmail["imap"]["host"] == "imap.gmail.com" and gmail["_source"] == "table"
        guess = http.get("/v1/autoconfig", params={"email": "me@corp.example"}).json()
        assert guess["imap"]["host"] == "imap.corp.example" and guess["_source"] == "guess"
        bad = http.get("/v1/autoconfig", params={"email": "nope"})
        assert bad.status_code == 400 and error_of(bad)["code"] == "InputValidationError"
        assert http.get("/v1/autoconfig").status_code == 400


def test_server_signatures_and_document_store(
    mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser
) -> None:
    with mailgate.client() as http:
        account = register(http, dovecot, mail_user)
        sigs = http.get(f"/v1/account/{account}/server-signatures")
        assert sigs.json() == {"signatures": [], "signaturesSupported": False}
        missing = http.get("/v1/account/no-such-account/server-signatures")
        assert missing.status_code == 404 and error_of(missing)["code"] == "AccountNotFound"
        chat = http.post(f"/v1/chat/{account}", json={"question": "when?"})
        assert chat.status_code == 400 and error_of(chat)["code"] == "DocumentStoreDisabled"
        search = http.post("/v1/unified/search", json={"search": {"unseen": True}})
        assert search.status_code == 400 and error_of(search)["code"] == "DocumentStoreDisabled"


# ---- webhook routes, blocklists ------------------------------------------------------------


def test_webhook_routes_are_listed_and_read(
    mailgate: MailgateProcess, redis_server: RedisServer
) -> None:
    with mailgate.client() as http:
        unknown = http.get("/v1/webhookRoutes/webhookRoute/nope")
        assert unknown.status_code == 404 and error_of(unknown)["code"] == "WebhookRouteNotFound"
        before = http.get("/v1/webhookRoutes").json()
        assert {"total", "page", "pages", "webhooks"} <= set(before)
        route_id = f"r{uuid.uuid4().hex[:10]}"
        raw = sync_client(redis_server.url)
        try:  # routes have no write API yet: store one the way the service keeps them
            raw.set(
                f"mg:{{mg}}:whr:r:{route_id}",
                json.dumps({"name": "Slack", "targetUrl": "https://hooks.example/x",
                            "enabled": True, "content": {"fn": "return true;"}}),
            )  # fmt: skip
            raw.zadd("mg:{mg}:whr:all", {route_id: time.time() * 1000})
            listing = http.get("/v1/webhookRoutes", params={"pageSize": 1000}).json()
            listed = {r["id"]: r for r in listing["webhooks"]}
            assert listed[route_id]["name"] == "Slack" and listed[route_id]["enabled"] is True
            assert listing["total"] == before["total"] + 1
            one = http.get(f"/v1/webhookRoutes/webhookRoute/{route_id}").json()
            assert one["targetUrl"] == "https://hooks.example/x"
            assert one["content"] == {"fn": "return true;", "map": None}
        finally:
            raw.delete(f"mg:{{mg}}:whr:r:{route_id}")
            raw.zrem("mg:{mg}:whr:all", route_id)
            raw.close()


def test_blocklists(mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser) -> None:
    list_id = f"unsub-{uuid.uuid4().hex[:6]}.example"
    with mailgate.client() as http:
        account = register(http, dovecot, mail_user)
        empty = http.get(f"/v1/blocklist/{list_id}").json()
        assert empty["total"] == 0 and empty["addresses"] == []
        for i in range(3):
            added = http.post(
                f"/v1/blocklist/{list_id}",
                json={"account": account, "recipient": f"User{i}@Example.test", "reason": "unsubscribe"},
            )  # fmt: skip
            assert added.json() == {"success": True, "added": True}, added.text
        again = http.post(
            f"/v1/blocklist/{list_id}", json={"account": account, "recipient": "user0@example.test"}
        )
        assert again.json() == {"success": True, "added": False}
        page = http.get(f"/v1/blocklist/{list_id}", params={"pageSize": 2}).json()
        assert page["total"] == 3 and page["pages"] == 2 and len(page["addresses"]) == 2
        assert page["addresses"][0]["recipient"] == "user0@example.test"  # most recently listed
        assert page["addresses"][0]["reason"] == "block"  # the re-add replaced the entry
        assert page["addresses"][1]["reason"] == "unsubscribe"
        assert (
            page["addresses"][1]["account"] == account and page["addresses"][1]["source"] == "api"
        )
        lists = http.get("/v1/blocklists", params={"pageSize": 1000}).json()
        assert {"listId": list_id, "count": 3} in lists["blocklists"]
        gone = http.delete(f"/v1/blocklist/{list_id}", params={"recipient": "USER1@example.test"})
        assert gone.json() == {"deleted": True}
        assert http.delete(
            f"/v1/blocklist/{list_id}", params={"recipient": "user1@example.test"}
        ).json() == {"deleted": False}
        for r in ("user0@example.test", "user2@example.test"):
            http.delete(f"/v1/blocklist/{list_id}", params={"recipient": r})
        lists = http.get("/v1/blocklists", params={"pageSize": 1000}).json()
        assert list_id not in [x["listId"] for x in lists["blocklists"]]  # last entry: list gone
        no_account = http.post(
            f"/v1/blocklist/{list_id}", json={"account": "nope-x", "recipient": "a@b.test"}
        )
        assert no_account.status_code == 404 and error_of(no_account)["code"] == "AccountNotFound"
        bad_id = http.get("/v1/blocklist/not_a_hostname!")
        assert bad_id.status_code == 400


# ---- token audit log, account logs ---------------------------------------------------------


def test_token_audit_log(mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser) -> None:
    with mailgate.client() as http:
        account = register(http, dovecot, mail_user)
        bound = http.post(
            "/v1/tokens", json={"scopes": ["api"], "account": account, "description": "audit"}
        ).json()
        token_id = bound["id"]
        assert http.get(f"/v1/tokens/{token_id}/log").json()["total"] == 0
        assert http.post("/v1/settings", json={"tokenAuditLog": True}).status_code == 200
        try:
            time.sleep(5.2)  # the setting is cached for 5 s per process
            with mailgate.client(token=bound["token"]) as as_bound:
                assert as_bound.get(f"/v1/account/{account}").status_code == 200
                assert as_bound.get("/v1/account/someone-else").status_code == 403
            log = http.get(f"/v1/tokens/{token_id}/log").json()
            assert log["token"] == token_id and log["total"] == 2
            denied, allowed = log["entries"]  # newest first
            assert allowed["path"] == "/v1/account/{account}" and allowed["method"] == "get"
            assert allowed["status"] == "allowed" and allowed["account"] == account
            assert allowed["action"] == "read" and allowed["group"] == "account"
            assert allowed["ip"] == "127.0.0.1" and allowed["reason"] is None
            assert denied["status"] == "denied" and denied["reason"] == "account"
            assert denied["account"] == "someone-else"
        finally:
            http.post("/v1/settings", json={"tokenAuditLog": False})
        missing = http.get("/v1/tokens/0000/log")
        assert missing.status_code == 404 and error_of(missing)["code"] == "TokenNotFound"


def test_account_logs(
    mailgate: MailgateProcess, dovecot: Dovecot, user_factory: Callable[..., MailUser]
) -> None:
    with mailgate.client() as http:
        logged = register(http, dovecot, user_factory(), logs=True)
        quiet = register(http, dovecot, user_factory())

        def lines() -> list[dict[str, Any]]:
            resp = http.get(f"/v1/logs/{logged}")
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
            return [json.loads(line) for line in resp.text.splitlines()]

        entries = wait_for(
            lambda: [e for e in lines() if e.get("state") == "connected"] and lines(),
            what="a connected line in the account log",
        )
        states = [e["state"] for e in entries if e["msg"] == "account state"]
        assert states[-1] == "connected" and "connecting" in states  # oldest first
        assert all(e["account"] == logged and e["time"].endswith("Z") for e in entries)
        assert http.get(f"/v1/logs/{quiet}").text == ""  # logging is off for that one
        assert http.get("/v1/logs/no-such-account").status_code == 404


# ---- change stream --------------------------------------------------------------------------


class SseReader:
    """Reads ``/v1/changes`` in a thread; SSE messages (id, parsed data) arrive on ``events``."""

    def __init__(self, mailgate: MailgateProcess) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.opened = threading.Event()
        self.comments: list[str] = []
        self._stop = threading.Event()
        self._client = mailgate.client(timeout=60.0)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SseReader:
        self._thread.start()
        assert self.opened.wait(10), "the change stream did not open"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._client.close()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/v1/changes") as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                event_id = ""
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(":") or line.startswith("retry:"):
                        self.comments.append(line)
                        self.opened.set()
                    elif line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        self.events.put((event_id, json.loads(line[6:])))
        except (httpx.HTTPError, RuntimeError):
            return  # closed by __exit__

    def wait(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                _, data = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(f"{data.get('account')}:{data.get('event')}")
            if match(data):
                return data
        raise AssertionError(f"no matching change event within {timeout}s; saw {seen}")


def wake_subscribers(redis_url: str) -> int:
    """Subscribers of the webhook wake channel (summed over the nodes of a cluster: a client
    subscribes on one node of its choice)."""
    raw = sync_client(redis_url)
    channel = "mg:{mg}:wh:wake"
    try:
        if isinstance(raw, redis.cluster.RedisCluster):
            return sum(
                int(dict(raw.pubsub_numsub(channel, target_nodes=node))[channel.encode()])
                for node in raw.get_nodes()
            )
        return int(dict(raw.pubsub_numsub(channel))[channel.encode()])
    finally:
        raw.close()


@pytest.mark.cluster
def test_change_stream_delivers_new_mail(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    mail_user: MailUser,
    redis_server: RedisServer,
) -> None:
    with mailgate.client() as http:
        account = register(http, dovecot, mail_user)
    before = wake_subscribers(redis_server.url)
    with SseReader(mailgate) as sse:
        assert wake_subscribers(redis_server.url) == before + 1
        subject = f"sse {uuid.uuid4().hex[:8]}"
        dovecot.deliver(mail_user.name, message(subject))
        event = sse.wait(lambda d: d.get("account") == account and d.get("event") == "messageNew")
        assert event["data"]["subject"] == subject
        assert event["path"] == "INBOX" and "serviceUrl" in event and "date" in event
    # the client's disconnect ends the stream and its subscription
    wait_for(lambda: wake_subscribers(redis_server.url) == before, timeout=10, what="unsubscribe")


def test_change_stream_of_an_account_token_sees_only_its_account(
    mailgate: MailgateProcess, dovecot: Dovecot, user_factory: Callable[..., MailUser]
) -> None:
    mine_user, other_user = user_factory(), user_factory()
    with mailgate.client() as http:
        mine = register(http, dovecot, mine_user)
        other = register(http, dovecot, other_user)
        token = http.post("/v1/tokens", json={"scopes": ["api"], "account": mine}).json()["token"]
    reader = SseReader(mailgate)
    reader._client = mailgate.client(token=token, timeout=60.0)
    with reader as sse:
        dovecot.deliver(other_user.name, message("for the other account"))
        dovecot.deliver(mine_user.name, message("for me"))
        event = sse.wait(lambda d: d.get("event") == "messageNew")
        assert event["account"] == mine and event["data"]["subject"] == "for me"
        assert other != mine


# ---- exports -------------------------------------------------------------------------------


@pytest.fixture
def five_messages(
    mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser
) -> Iterator[tuple[str, list[str]]]:
    with mailgate.client() as http:
        account = register(http, dovecot, mail_user)
        subjects = [f"export {i} {uuid.uuid4().hex[:6]}" for i in range(5)]
        for subject in subjects:
            dovecot.deliver(mail_user.name, message(subject))
        dovecot.create_folder(mail_user.name, "Archive")
        dovecot.deliver(mail_user.name, message("archived one"), folder="Archive")
        dovecot.deliver(mail_user.name, message("junk one"), folder="Junk")
        yield account, subjects


def wait_export(
    http: httpx.Client, account: str, export_id: str, timeout: float = 30.0
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status: dict[str, Any] = http.get(f"/v1/account/{account}/export/{export_id}").json()
        return status if status["status"] in ("completed", "failed", "cancelled") else None

    return wait_for(probe, timeout=timeout, what=f"export {export_id}")


def test_export_of_delivered_messages(
    mailgate: MailgateProcess, five_messages: tuple[str, list[str]]
) -> None:
    account, subjects = five_messages
    with mailgate.client() as http:
        created = http.post(
            f"/v1/account/{account}/export",
            json={"folders": ["INBOX"], "startDate": "2000-01-01T00:00:00Z",
                  "endDate": "2100-01-01T00:00:00Z", "textType": "plain"},
        )  # fmt: skip
        assert created.status_code == 200, created.text
        export = created.json()
        assert export["exportId"].startswith("exp_") and export["status"] == "queued"
        status = wait_export(http, account, export["exportId"])
        assert status["status"] == "completed", status
        assert status["phase"] == "complete" and status["folders"] == ["INBOX"]
        progress = status["progress"]
        assert progress["messagesQueued"] == 5 and progress["messagesExported"] == 5
        assert progress["foldersScanned"] == progress["foldersTotal"] == 1
        assert progress["bytesWritten"] > 0 and status["isEncrypted"] is False

        download = http.get(f"/v1/account/{account}/export/{export['exportId']}/download")
        assert download.status_code == 200
        assert download.headers["content-type"] == "application/gzip"
        lines = gzip.decompress(download.content).decode().splitlines()
        records = [json.loads(line) for line in lines]
        assert sorted(r["subject"] for r in records) == sorted(subjects)
        assert all(r["path"] == "INBOX" and "Body of" in r["text"]["plain"] for r in records)
        assert len(download.content) < progress["bytesWritten"] + 1024  # it is compressed

        listing = http.get(f"/v1/account/{account}/exports").json()
        assert listing["total"] == 1 and listing["exports"][0]["exportId"] == export["exportId"]
        assert listing["exports"][0]["status"] == "completed"

        deleted = http.delete(f"/v1/account/{account}/export/{export['exportId']}")
        assert deleted.json() == {"deleted": True}
        gone = http.get(f"/v1/account/{account}/export/{export['exportId']}")
        assert gone.status_code == 404 and error_of(gone)["code"] == "ExportNotFound"


def test_export_defaults_skip_junk_and_filter_dates(
    mailgate: MailgateProcess, five_messages: tuple[str, list[str]]
) -> None:
    account, subjects = five_messages
    with mailgate.client() as http:
        everything = http.post(
            f"/v1/account/{account}/export",
            json={"startDate": "2000-01-01T00:00:00Z", "endDate": "2100-01-01T00:00:00Z",
                  "includeAttachments": True},
        ).json()  # fmt: skip
        long_ago = http.post(
            f"/v1/account/{account}/export",
            json={"startDate": "2000-01-01T00:00:00Z", "endDate": "2001-01-01T00:00:00Z"},
        ).json()
        done = wait_export(http, account, everything["exportId"])
        assert done["status"] == "completed", done
        assert "Junk" not in done["folders"] and {"INBOX", "Archive"} <= set(done["folders"])
        data = http.get(f"/v1/account/{account}/export/{everything['exportId']}/download").content
        got = {json.loads(line)["subject"] for line in gzip.decompress(data).decode().splitlines()}
        assert got == {*subjects, "archived one"}
        empty = wait_export(http, account, long_ago["exportId"])
        assert empty["status"] == "completed" and empty["progress"]["messagesExported"] == 0
        bad = http.post(
            f"/v1/account/{account}/export",
            json={"startDate": "2024-01-02T00:00:00Z", "endDate": "2024-01-01T00:00:00Z"},
        )
        assert bad.status_code == 400
        missing_dates = http.post(f"/v1/account/{account}/export", json={})
        assert missing_dates.status_code == 400
        unknown = http.post(
            "/v1/account/no-such-acct/export",
            json={"startDate": "2024-01-01T00:00:00Z", "endDate": "2024-01-02T00:00:00Z"},
        )
        assert unknown.status_code == 404


# ---- delivery test --------------------------------------------------------------------------


def test_delivery_test_reports_arrival(
    mailgate: MailgateProcess, dovecot: Dovecot, mail_user: MailUser, smtp_capture: SmtpCapture
) -> None:
    with mailgate.client() as http:
        smtp = {
            "host": dovecot.host,
            "port": dovecot.submission_port,
            "secure": False,
            "tls": {"rejectUnauthorized": False},
            "auth": {"user": mail_user.name, "pass": mail_user.password},
        }
        account = register(http, dovecot, mail_user, smtp=smtp)
        started = http.post(f"/v1/delivery-test/account/{account}", json={"gateway": False})
        assert started.status_code == 200, started.text
        test_id = started.json()["deliveryTest"]
        assert started.json()["success"] is True
        first = http.get(f"/v1/delivery-test/check/{test_id}").json()
        assert first["success"] is False and first["status"] == "pending"

        # the test Dovecot relays submission to the SMTP capture: hand the message to LMTP,
        # as a real mail server would deliver it back to the account's own mailbox
        sent = smtp_capture.wait_for(
            1, timeout=20, predicate=lambda m: first["messageId"].encode() in m.data
        )[0]
        assert f"{mail_user.name}@example.test" in sent.rcpt_tos
        dovecot.deliver(mail_user.name, sent.data)

        result = wait_for(
            lambda: (r := http.get(f"/v1/delivery-test/check/{test_id}").json())["success"] and r,
            what="the delivery test to see its message",
        )
        assert result["messageId"] == first["messageId"] and "status" not in result
        assert result["spf"] == {"status": {"result": "none"}}  # no Authentication-Results here
        missing = http.get(f"/v1/delivery-test/check/{uuid.uuid4()}")
        assert missing.status_code == 404 and error_of(missing)["code"] == "DeliveryTestNotFound"
        unknown = http.post("/v1/delivery-test/account/no-such-acct", json={})
        assert unknown.status_code == 404
