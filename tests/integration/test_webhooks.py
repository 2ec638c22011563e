"""Webhook delivery against a real Redis and a real HTTP receiver on loopback.

Each test gets a private Redis (``redis_factory``): webhook settings are instance-wide and a
mailgate process on the shared session Redis may run a webhook worker of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from mailgate.api.errors import install_error_handlers
from mailgate.api.routes import queues
from mailgate.domain.account import AccountRecord, HeaderPair
from mailgate.services.settings import HeaderPair as SettingsHeader
from mailgate.services.settings import SettingsService, SettingsUpdate
from mailgate.services.webhooks import WebhookQueue, WebhookWorker, payload, signing
from mailgate.services.webhooks.delivery import Deliverer
from mailgate.services.webhooks.queue import LockLost
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.crypto import SecretBox
from mailgate.store.events import EventLog
from mailgate.store.redis import connect
from mailgate.store.tokens import TokenStore
from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

FAST = 0.01  # base retry delay in tests (seconds)
LIVENESS = 120.0  # generous bound for "eventually": a hang fails instead of blocking forever


# ---- receiver ------------------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def event_id(self) -> str:
        """The stream id (``X-EE-Wh-Id``); checked against ``X-EE-Wh-Event-Id`` below."""
        assert self.headers["x-ee-wh-event-id"] == payload.event_uuid(
            self.json["account"], self.headers["x-ee-wh-id"]
        )
        return self.headers["x-ee-wh-id"]


@dataclass
class Receiver:
    responder: Callable[[str, dict[str, str], bytes], int] = lambda path, headers, body: 200
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ok(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if 200 <= h.status < 300]

    def all(self) -> list[Hit]:
        with self.lock:
            return list(self.hits)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with rec.lock:
                status = rec.responder(self.path, headers, body)
                rec.hits.append(Hit(self.path, headers, body, status))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


# ---- mailgate pieces -----------------------------------------------------------------------


@dataclass
class Env:
    server: RedisServer
    redis: Redis
    settings: SettingsService
    accounts: AccountStore
    events: EventLog
    clients: list[Redis] = field(default_factory=list)

    def worker(self, node: str, **kw: Any) -> WebhookWorker:
        client = connect(self.server.url)  # one client per worker, like one process each
        self.clients.append(client)
        box = SecretBox("test-secret")
        kw.setdefault("base_delay", FAST)
        return WebhookWorker(
            client, SettingsService(client, box), AccountStore(client, box), node_id=node, **kw
        )

    async def account(self, name: str, **kw: Any) -> str:
        account = f"{name}-{uuid.uuid4().hex[:6]}"
        await self.accounts.save(AccountRecord(account=account, **kw))
        return account

    async def enable(self, url: str, **kw: Any) -> None:
        await self.settings.update(
            SettingsUpdate(webhooksEnabled=True, webhooks=url, serviceUrl="https://mg.test", **kw)
        )


@pytest.fixture
async def env(redis_factory: Callable[[], RedisServer]) -> AsyncIterator[Env]:
    server = redis_factory()
    redis = connect(server.url)
    box = SecretBox("test-secret")
    e = Env(server, redis, SettingsService(redis, box), AccountStore(redis, box), EventLog(redis))
    yield e
    for client in [redis, *e.clients]:
        await client.aclose()


@contextlib.asynccontextmanager
async def running(*workers: WebhookWorker) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield tasks
    finally:
        await stop(*tasks)


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(
    probe: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = LIVENESS
) -> None:
    """Poll ``probe`` (sync or async) until true; the timeout only bounds a hang."""
    async with asyncio.timeout(timeout):
        while True:
            result = probe()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(what)


def by_account(hits: list[Hit]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for hit in hits:
        out.setdefault(hit.json["account"], []).append(hit.event_id)
    return out


def id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


def assert_exactly_once_in_order(hits: list[Hit], appended: dict[str, list[str]]) -> None:
    got = by_account(hits)
    assert len({h.headers["x-ee-wh-event-id"] for h in hits}) == len(hits)  # no id twice
    assert set(got) == set(appended)
    for account, ids in appended.items():
        assert got[account] == ids, f"{account}: delivered {len(got[account])} of {len(ids)}"


# ---- tests ---------------------------------------------------------------------------------


async def test_envelope_signature_headers_and_account_url(env: Env, receiver: Receiver) -> None:
    await env.enable(
        receiver.url("/global"),
        serviceSecret="wh-secret",
        webhooksCustomHeaders=[SettingsHeader(key="X-Global", value="g1")],
    )
    plain = await env.account("plain", webhooks_custom_headers=[HeaderPair("X-Account", "a1")])
    own = await env.account("own", webhooks=receiver.url("/own?token=t"))
    e1 = await env.events.append(
        plain,
        "messageNew",
        {"id": "AAAAAQAAAAE", "uid": 1, "subject": "Tere 🤡"},
        path="INBOX",
        special_use="\\Inbox",
    )
    e2 = await env.events.append(own, "messageSent", {"messageId": "<x@y>"})
    async with running(env.worker("w1")):
        await eventually(lambda: len(receiver.ok()) == 2, "both events delivered")
    hits = {(h.json["account"], h.event_id): h for h in receiver.ok()}
    first, second = hits[plain, e1], hits[own, e2]

    assert first.path == "/global"
    assert list(first.json) == [
        "serviceUrl",
        "account",
        "date",
        "path",
        "specialUse",
        "event",
        "data",
    ]
    assert first.json["serviceUrl"] == "https://mg.test"
    assert first.json["account"] == plain and first.json["event"] == "messageNew"
    assert first.json["path"] == "INBOX" and first.json["specialUse"] == "\\Inbox"
    assert first.json["data"]["subject"] == "Tere 🤡"
    assert signing.verify(first.body, "wh-secret", first.headers["x-ee-wh-signature"])
    assert first.headers["content-type"] == "application/json"
    assert first.headers["user-agent"].startswith("mailgate/")
    assert first.headers["x-ee-wh-attempts"] == "1"
    assert first.headers["x-ee-wh-queued-time"].endswith("s")
    assert first.headers["x-global"] == "g1" and first.headers["x-account"] == "a1"

    assert second.path == "/own?token=t"  # the account's URL instead of the global one
    assert list(second.json) == ["serviceUrl", "account", "date", "event", "data"]
    assert signing.verify(second.body, "wh-secret", second.headers["x-ee-wh-signature"])
    assert "x-account" not in second.headers


async def test_event_filter_skips_but_advances(env: Env, receiver: Receiver) -> None:
    await env.enable(receiver.url(), webhookEvents=["messageNew"])
    account = await env.account("filter")
    ids = [
        await env.events.append(account, name, {"n": i})
        for i, name in enumerate(
            ["messageDeleted", "messageNew", "messageUpdated", "messageNew", "mailboxNew"]
        )
    ]
    worker = env.worker("w1")
    queue = WebhookQueue(env.redis)
    async with running(worker):
        await eventually(lambda: len(receiver.ok()) == 2, "two messageNew delivered")

        async def settled() -> bool:
            return (await queue.head(account)).cursor == ids[-1]

        await eventually(settled, "the cursor is at the last event")
    assert [h.event_id for h in receiver.ok()] == [ids[1], ids[3]]
    stats = await worker.stats()
    assert stats["jobs"]["waiting"] == 0 and stats["jobs"]["completed"] == 2


async def test_disabled_webhooks_deliver_nothing_but_advance(env: Env, receiver: Receiver) -> None:
    await env.settings.update(SettingsUpdate(webhooksEnabled=False, webhooks=receiver.url()))
    account = await env.account("off")
    last = ""
    for i in range(5):
        last = await env.events.append(account, "messageNew", {"n": i})
    queue = WebhookQueue(env.redis)
    async with running(env.worker("w1")):

        async def settled() -> bool:
            return (await queue.head(account)).cursor == last

        await eventually(settled, "the cursor is at the last event")
    assert receiver.all() == []


async def test_retries_until_the_receiver_recovers(env: Env, receiver: Receiver) -> None:
    failures = {"left": 7}

    def flaky(path: str, headers: dict[str, str], body: bytes) -> int:
        if failures["left"] > 0:
            failures["left"] -= 1
            return 500
        return 200

    receiver.responder = flaky
    await env.enable(receiver.url())
    appended: dict[str, list[str]] = {}
    for name in ("r1", "r2"):
        account = await env.account(name)
        appended[account] = [
            await env.events.append(account, "messageNew", {"n": i}) for i in range(20)
        ]
    async with running(env.worker("w1")):
        await eventually(lambda: len(receiver.ok()) == 40, "all 40 delivered")
    assert_exactly_once_in_order(receiver.ok(), appended)
    failed = [h for h in receiver.all() if h.status == 500]
    assert len(failed) == 7
    # a retried event keeps its id, and its attempt number goes up (stream ids are per account:
    # two accounts' events appended in the same millisecond can share one)
    retried = (failed[0].json["account"], failed[0].event_id)
    attempts = [
        int(h.headers["x-ee-wh-attempts"])
        for h in receiver.all()
        if (h.json["account"], h.event_id) == retried
    ]
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 2


async def test_gives_up_after_max_attempts_and_goes_on(env: Env, receiver: Receiver) -> None:
    receiver.responder = lambda path, headers, body: 503 if b'"poison"' in body else 200
    await env.enable(receiver.url())
    account = await env.account("poison")
    before = await env.events.append(account, "messageNew", {"n": 0})
    poison = await env.events.append(account, "messageNew", {"kind": "poison"})
    after = await env.events.append(account, "messageNew", {"n": 2})
    worker = env.worker("w1", max_attempts=3)
    async with running(worker):
        await eventually(lambda: len(receiver.ok()) == 2, "the events around the poison one")
    assert [h.event_id for h in receiver.ok()] == [before, after]
    assert [int(h.headers["x-ee-wh-attempts"]) for h in receiver.all() if h.event_id == poison] == [
        1,
        2,
        3,
    ]
    stats = await worker.stats()
    assert stats["jobs"]["failed"] == 1 and stats["jobs"]["completed"] == 2


async def test_refused_targets_fail_once_without_retries(env: Env, receiver: Receiver) -> None:
    await env.enable(receiver.url())
    metadata = await env.account("meta", webhooks="http://169.254.169.254/latest/meta-data/")
    bad_scheme = await env.account("ftp", webhooks="ftp://example.com/hook")
    fine = await env.account("fine")
    for account in (metadata, bad_scheme):
        await env.events.append(account, "messageNew", {"n": 1})
    ok_id = await env.events.append(fine, "messageNew", {"n": 1})
    worker = env.worker("w1")
    async with running(worker):
        await eventually(lambda: len(receiver.ok()) == 1, "the allowed target")

        async def failed() -> bool:
            return int((await worker.stats())["jobs"]["failed"]) == 2

        await eventually(failed, "both refused events dropped")
    assert [h.event_id for h in receiver.all()] == [ok_id]
    assert await env.redis.zcard(keys.WEBHOOK_RETRY) == 0  # never in backoff: permanent


async def test_block_private_setting_refuses_loopback(env: Env, receiver: Receiver) -> None:
    await env.enable(receiver.url(), webhooksBlockPrivate=True)
    account = await env.account("private")
    await env.events.append(account, "messageNew", {"n": 1})
    worker = env.worker("w1")
    async with running(worker):

        async def failed() -> bool:
            return int((await worker.stats())["jobs"]["failed"]) == 1

        await eventually(failed, "the refused event dropped")
    assert receiver.all() == []
    # switched off again: new events go through
    await env.settings.update(SettingsUpdate(webhooksBlockPrivate=False))
    later = await env.events.append(account, "messageNew", {"n": 2})
    async with running(env.worker("w2")):
        await eventually(lambda: len(receiver.ok()) == 1, "delivered once allowed")
    assert receiver.ok()[0].event_id == later


async def test_cancelled_worker_is_resumed_by_a_new_one(env: Env, receiver: Receiver) -> None:
    await env.enable(receiver.url())
    appended: dict[str, list[str]] = {}
    for name in ("c1", "c2"):
        account = await env.account(name)
        appended[account] = [
            await env.events.append(account, "messageNew", {"n": i}) for i in range(150)
        ]
    first = env.worker("first")
    task = asyncio.create_task(first.run())
    await eventually(lambda: len(receiver.ok()) >= 60, "the first worker made progress")
    await stop(task)
    partial = len(receiver.ok())
    assert partial < 300
    async with running(env.worker("second")):
        await eventually(lambda: len(receiver.ok()) >= 300, "the second worker finished")
    assert_exactly_once_in_order(receiver.ok(), appended)
    assert len(receiver.all()) == 300  # nothing re-sent after the graceful stop


async def test_unexpected_failure_backs_off_instead_of_spinning(
    env: Env, receiver: Receiver
) -> None:
    """A bug-shaped error while draining an account is logged once and the account waits a
    retry delay: releasing the lock must not make it due again at once (a busy loop)."""
    await env.enable(receiver.url())
    account = await env.account("boom")
    worker = env.worker("boom", base_delay=30.0)
    calls = 0

    async def broken_drain(account: str, token: str) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug")

    worker._drain = broken_drain  # type: ignore[method-assign]
    async with running(worker):
        await env.events.append(account, "messageNew", {"n": 1})
        await eventually(lambda: calls >= 1, "the drain ran")
        await asyncio.sleep(0.5)  # a spinning worker would have retried hundreds of times
        assert calls == 1
        due = await env.redis.zscore(keys.WEBHOOK_PENDING, account)
        assert due is not None and due > time.time() * 1000 + 20_000
    assert receiver.all() == []


async def test_two_workers_deliver_each_event_once_in_order(env: Env, receiver: Receiver) -> None:
    await env.enable(receiver.url())
    accounts = [await env.account(f"p{i}") for i in range(10)]
    appended: dict[str, list[str]] = {a: [] for a in accounts}

    async def produce(account: str) -> None:
        for i in range(100):
            appended[account].append(await env.events.append(account, "messageNew", {"n": i}))

    async with running(env.worker("a"), env.worker("b")):
        await asyncio.gather(*(produce(a) for a in accounts))
        await eventually(lambda: len(receiver.ok()) >= 1000, "1,000 events delivered")
    ok = receiver.ok()
    assert len(ok) == 1000
    assert_exactly_once_in_order(ok, appended)
    assert len({h.event_id + h.json["account"] for h in ok}) == 1000


async def test_recovery_scan_finds_events_whose_mark_was_lost(env: Env, receiver: Receiver) -> None:
    await env.enable(receiver.url())
    account = await env.account("lost")
    entry = {
        "account": account,
        "date": "2024-01-01T00:00:00.000Z",
        "event": "messageNew",
        "data": {},
    }
    # appended without the schedule mark, as when a process dies between XADD and ZADD
    raw_id = await env.redis.xadd(keys.events(account), {"e": json.dumps(entry)})
    event_id = raw_id.decode()
    assert await env.redis.zscore(keys.WEBHOOK_PENDING, account) is None
    async with running(env.worker("w1")):
        await eventually(lambda: len(receiver.ok()) == 1, "the unmarked event delivered")
    assert receiver.ok()[0].event_id == event_id


async def test_pause_and_queue_route(env: Env, receiver: Receiver) -> None:
    await env.enable(receiver.url())
    tokens = TokenStore(env.redis)
    token, _ = await tokens.issue(scopes=["*"])
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(queues.router)
    app.state.container = type("C", (), {"redis": env.redis, "tokens": tokens})()
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        put = await http.put("/v1/settings/queue/notify", json={"paused": True}, headers=auth)
        assert put.status_code == 200 and put.json() == {"queue": "notify", "paused": True}
        account = await env.account("paused")
        for i in range(5):
            await env.events.append(account, "messageNew", {"n": i})
        assert await WebhookQueue(env.redis).claim_due(10) == ([], None)  # paused: nothing due
        got = (await http.get("/v1/settings/queue/notify", headers=auth)).json()
        assert got == {
            "queue": "notify",
            "jobs": {
                "active": 0,
                "delayed": 0,
                "paused": 0,
                "waiting": 5,
                "completed": 0,
                "failed": 0,
            },
            "paused": True,
        }
        async with running(env.worker("w1")):
            put = await http.put("/v1/settings/queue/notify", json={"paused": False}, headers=auth)
            assert put.json()["paused"] is False
            await eventually(lambda: len(receiver.ok()) == 5, "delivered after resuming")

            async def idle() -> bool:
                got = (await http.get("/v1/settings/queue/notify", headers=auth)).json()
                return got["jobs"]["waiting"] == 0

            await eventually(idle, "nothing waiting")
        got = (await http.get("/v1/settings/queue/notify", headers=auth)).json()
        assert got["jobs"]["completed"] == 5 and got["paused"] is False
        other = (await http.get("/v1/settings/queue/submit", headers=auth)).json()
        assert other["queue"] == "submit" and other["jobs"]["waiting"] == 0
        bad = await http.get("/v1/settings/queue/nope", headers=auth)
        assert bad.status_code == 400 and bad.json()["code"] == "InputValidationError"
        assert (await http.get("/v1/settings/queue/notify")).status_code == 401


async def test_attempt_count_survives_a_restart(env: Env, receiver: Receiver) -> None:
    receiver.responder = lambda path, headers, body: 500 if len(receiver.hits) < 2 else 200
    await env.enable(receiver.url())
    account = await env.account("restart")
    event_id = await env.events.append(account, "messageNew", {"n": 1})
    async with running(env.worker("first")):
        await eventually(lambda: len(receiver.all()) >= 2, "two failed attempts")
    async with running(env.worker("second")):
        await eventually(lambda: len(receiver.ok()) == 1, "delivered by the second worker")
    hits = receiver.all()
    assert [h.event_id for h in hits] == [event_id] * 3
    assert [h.headers["x-ee-wh-attempts"] for h in hits] == ["1", "2", "3"]


async def test_a_worker_that_lost_its_lock_cannot_move_the_cursor(env: Env) -> None:
    account = await env.account("fence")
    first = await env.events.append(account, "messageNew", {"n": 1})
    queue = WebhookQueue(env.redis)
    assert await queue.acquire(account, "old")
    assert not await queue.acquire(account, "new")
    await env.redis.delete(keys.webhook_lock(account))  # "old" paused past its TTL
    assert await queue.acquire(account, "new")
    with pytest.raises(LockLost):
        await queue.advance(account, "old", first, 1, "completed")
    with pytest.raises(LockLost):
        await queue.record_failure(account, "old", first, 1, "HTTP 500")
    assert (await queue.head(account)).cursor is None
    await queue.advance(account, "new", first, 1, "completed")
    assert (await queue.head(account)).cursor == first
    await queue.release(account, "old")  # not the owner: no effect
    assert await env.redis.get(keys.webhook_lock(account)) == b"new"


async def test_delivery_pins_checked_addresses_and_ignores_redirects(receiver: Receiver) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        assert host == "hooks.test"
        return ["::1", "127.0.0.1"]  # nothing listens on ::1 here: the next address is tried

    receiver.responder = lambda path, headers, body: 302 if path == "/moved" else 200
    async with httpx.AsyncClient(follow_redirects=True) as http:  # the attempt still refuses
        deliverer = Deliverer(http, resolver=resolver)
        ok = await deliverer.post(
            f"http://hooks.test:{receiver.port}/hook", b"{}", {"X-A": "1"}, block_private=False
        )
        assert ok.ok and ok.status == 200
        moved = await deliverer.post(
            f"http://hooks.test:{receiver.port}/moved", b"{}", {}, block_private=False
        )
        assert not moved.ok and moved.status == 302 and not moved.permanent
        refused = await deliverer.post(
            f"http://hooks.test:{receiver.port}/hook", b"{}", {}, block_private=True
        )
        assert refused.permanent and "private" in (refused.error or "")
    hits = receiver.all()
    assert [h.path for h in hits] == ["/hook", "/moved"]
    assert hits[0].headers["host"] == f"hooks.test:{receiver.port}"
    assert hits[0].headers["x-a"] == "1"
