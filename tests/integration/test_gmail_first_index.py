"""Gmail first index and history replay against the fake Google: which mail is announced.

A first index takes the history id H0, then lists every message page by page; mail arriving
meanwhile may land in a later page. Every message added after H0 must become ``messageNew``
exactly once (also when the first index or the history replay is interrupted and done again),
and no message that was there at H0 ever may, except the ones received after notifyFrom.

The fake's ``on_call`` hook delivers mail between two ``messages.list`` pages. The syncer runs
in the test's own loop with small pages, as an account runner would run it; "killed" means
its committer refuses a commit (nothing of that step is written, as after kill -9).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from redis.asyncio import Redis

from mailgate.backends.gmail.client import GmailClient
from mailgate.backends.gmail.labels import LabelCache
from mailgate.backends.gmail.quota import QuotaBudget
from mailgate.backends.gmail.sync import GmailSyncer
from mailgate.domain.sync import SyncOptions
from mailgate.store import keys
from mailgate.store.commit import Batch, Committer, LeaseLost
from mailgate.store.redis import connect, str_map
from tests.fakes.google import MODIFY_SCOPE, FakeGoogle, start_fake_google
from tests.integration.helpers import account_events
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.integration

PAGE = 5  # ids per messages.list page: 12 messages make three pages of every listing
OLD_MS = 1_600_000_000_000  # internal dates of mail that was there before notifyFrom (2020)
NOTIFY_FROM = datetime.fromtimestamp(1_650_000_000, UTC)  # 2022
RECENT_MS = 1_700_000_000_000  # mail received after notifyFrom, before the first index (2023)
IMPORTED_MS = 1_500_000_000_000  # mail imported during the index with an old date: sorts last


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGoogle]:
    server = start_fake_google(quota_units_per_second=None)
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> Any:
    client = connect(redis_server.url)
    yield client
    await client.aclose()


class _Tokens:
    def __init__(self, user: str, token: str) -> None:
        self.user, self.token = user, token

    async def access_token(self, account: str, *, refused: str | None = None) -> tuple[str, str]:
        return self.user, self.token


class _Killable(Committer):
    """Commits normally until ``killed(batch)`` says the process is dead by now."""

    def __init__(
        self, redis: Redis, account: str, killed: Callable[[Batch], Awaitable[bool]] | None = None
    ) -> None:
        super().__init__(redis, account, None)
        self.killed = killed

    async def commit(self, batch: Batch) -> None:
        if self.killed is not None and await self.killed(batch):
            raise LeaseLost("process killed (test)")
        await super().commit(batch)


def mail(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.com>"
    msg["To"] = "someone@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    msg.set_content("hello")
    return msg.as_bytes().replace(b"\n", b"\r\n")


class Setup:
    """A fresh Gmail user with mail from before notifyFrom and after, and its syncers."""

    def __init__(
        self, fake: FakeGoogle, redis: Redis, redis_url: str, notify_from: datetime | None
    ) -> None:
        self.fake, self.redis, self.redis_url = fake, redis, redis_url
        self.email = f"u{uuid.uuid4().hex[:8]}@gmail.test"
        self.tokens = _Tokens(self.email, fake.add_user(self.email, (MODIFY_SCOPE,)))
        self.account = f"gm-first-{uuid.uuid4().hex[:8]}"
        self.options = SyncOptions(indexer="full", notify_from=notify_from)
        self.work = fake.mailbox(self.email).create_label({"name": "Work"}).id
        self.old: list[str] = []
        for n in range(8):
            labels = ["INBOX"] + ([self.work] if n % 3 else [])
            self.old.append(
                fake.deliver(self.email, mail(f"old {n}"), labels, internal_date_ms=OLD_MS + n)
            )
        self.recent: list[str] = []
        for n in range(4):
            labels = ["INBOX", "UNREAD"]
            self.recent.append(
                fake.deliver(
                    self.email, mail(f"recent {n}"), labels, internal_date_ms=RECENT_MS + n
                )
            )
        self.arrived: list[str] = []  # delivered while the first index was listing

    def deliver_between_pages(self, after: int = 2) -> None:
        """After the ``after``-th answered messages.list page: one message imported with an old
        date (every listing not finished yet lists it on its last page; the listing of all mail
        has three pages, so it is one of them) and one received now (on no page begun earlier)."""

        def arrive() -> None:
            labels = ["INBOX", self.work]
            imported = self.fake.deliver(
                self.email, mail("imported during the index"), labels, internal_date_ms=IMPORTED_MS
            )
            received = self.fake.deliver(self.email, mail("received during the index"))
            self.arrived.extend([imported, received])

        self.fake.on_call("messages.list", arrive, email_address=self.email, after=after)

    def syncer(self, committer: Committer | None = None) -> GmailSyncer:
        client = GmailClient(self.account, self.tokens, self.fake.url, budget=QuotaBudget())

        async def fetch_labels() -> list[dict[str, Any]]:
            return list((await client.request("labels.list", "GET", "labels"))["labels"])

        return GmailSyncer(
            self.account,
            client,
            LabelCache(fetch_labels),
            self.redis,
            committer or Committer(self.redis, self.account, None),
            self.options,
            page_size=PAGE,
        )

    async def staged(self, message_id: str) -> bool:
        """Whether the first index under way has put ``message_id`` in its staging hash."""
        stage = keys.gmail_baseline_stage(self.account)
        return bool(await self.redis.hexists(stage, message_id))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in account_events(self.redis_url, self.account) if e["event"] == name]


@pytest.fixture
def setup_factory(
    fake: FakeGoogle, redis: Redis, redis_server: RedisServer
) -> Callable[[datetime | None], Setup]:
    def make(notify_from: datetime | None) -> Setup:
        return Setup(fake, redis, redis_server.url, notify_from)

    return make


def announced(setup: Setup) -> list[str]:
    return [e["data"]["id"] for e in setup.events("messageNew")]


@pytest.mark.parametrize("notify_from", [None, NOTIFY_FROM], ids=["no-notifyFrom", "notifyFrom"])
async def test_mail_arriving_between_listing_pages_is_announced_once(
    setup_factory: Callable[[datetime | None], Setup], notify_from: datetime | None
) -> None:
    setup = setup_factory(notify_from)
    setup.deliver_between_pages()
    seen_in_listing: set[str] = set()

    async def watch(batch: Batch) -> bool:
        for message_id in setup.arrived:
            if await setup.staged(message_id):
                seen_in_listing.add(message_id)
        return False

    await setup.syncer(_Killable(setup.redis, setup.account, watch)).run_pass()
    assert len(setup.arrived) == 2, "the hook did not run"
    imported, received = setup.arrived
    assert imported in seen_in_listing  # a listing page indexed it before the history replay

    expected = set(setup.arrived) | (set(setup.recent) if notify_from else set())
    ids = announced(setup)
    assert sorted(ids) == sorted(expected)  # each once; none of the mail there before
    by_id = {e["data"]["id"]: e for e in setup.events("messageNew")}
    assert by_id[imported]["path"] == "INBOX" and by_id[received]["path"] == "INBOX"
    assert by_id[imported]["data"]["subject"] == "imported during the index"
    assert len(setup.events("accountInitialized")) == 1

    await setup.syncer().run_pass()  # an unchanged account: nothing again
    assert sorted(announced(setup)) == sorted(expected)


async def test_interrupted_first_index_and_replay_announce_new_mail_once(
    setup_factory: Callable[[datetime | None], Setup],
) -> None:
    setup = setup_factory(NOTIFY_FROM)
    setup.deliver_between_pages()

    async def after_a_listing_took_it(batch: Batch) -> bool:
        return bool(setup.arrived) and await setup.staged(setup.arrived[0])

    # 1. killed during the first index, right after a page with the new mail was committed
    with pytest.raises(LeaseLost):
        await setup.syncer(
            _Killable(setup.redis, setup.account, after_a_listing_took_it)
        ).run_pass()
    base = str_map(await setup.redis.hgetall(keys.gmail_baseline(setup.account)))
    assert base.get("historyId")  # the first index is under way...
    assert "historyId" not in str_map(await setup.redis.hgetall(keys.gmail_state(setup.account)))
    assert not setup.events("messageNew") and not setup.events("accountInitialized")

    # 2. resumed, finished, and killed on the history page that announces the new mail
    async def on_announcing(batch: Batch) -> bool:
        return any(e.event == "messageNew" and e.data["id"] in setup.arrived for e in batch.events)

    with pytest.raises(LeaseLost):
        await setup.syncer(_Killable(setup.redis, setup.account, on_announcing)).run_pass()
    state = str_map(await setup.redis.hgetall(keys.gmail_state(setup.account)))
    assert state["historyId"] == base["historyId"]  # ...indexed as of H0, the replay not done
    assert not await setup.redis.exists(keys.gmail_baseline(setup.account))
    assert sorted(announced(setup)) == sorted(setup.recent)  # notifyFrom's, at the finish
    assert len(setup.events("accountInitialized")) == 1

    # 3. the replay again: each new message once, and nothing twice
    await setup.syncer().run_pass()
    assert sorted(announced(setup)) == sorted(setup.recent + setup.arrived)
    assert not set(announced(setup)) & set(setup.old)
    assert len(setup.events("accountInitialized")) == 1
    assert setup.fake.pending_call_hooks() == 0


async def test_new_mail_deleted_before_the_replay_is_neither_new_nor_deleted(
    setup_factory: Callable[[datetime | None], Setup],
) -> None:
    setup = setup_factory(None)
    setup.deliver_between_pages()

    deleted: list[str] = []

    async def delete_once_indexed(batch: Batch) -> bool:
        if setup.arrived and not deleted and await setup.staged(setup.arrived[0]):
            setup.fake.delete_as_other_client(setup.email, setup.arrived[0])
            deleted.append(setup.arrived[0])
        return False

    await setup.syncer(_Killable(setup.redis, setup.account, delete_once_indexed)).run_pass()
    imported, received = setup.arrived
    assert deleted == [imported]  # gone while the index was built, after a page listed it
    assert announced(setup) == [received]
    assert not setup.events("messageDeleted")


# -- label changes -----------------------------------------------------------------------------
async def test_label_move_is_one_message_updated_shaped_as_emailengine_sends_it(
    setup_factory: Callable[[datetime | None], Setup],
) -> None:
    setup = setup_factory(None)
    await setup.syncer().run_pass()
    fake, email = setup.fake, setup.email
    starred, plain = setup.recent[0], setup.recent[1]
    fake.modify_as_other_client(email, starred, add=["STARRED"])
    await setup.syncer().run_pass()
    first = len(setup.events("messageUpdated"))

    # INBOX -> Work, and read, in one change of another client; a plain move of another one
    fake.modify_as_other_client(email, starred, add=[setup.work], remove=["INBOX", "UNREAD"])
    fake.modify_as_other_client(email, plain, add=[setup.work], remove=["INBOX"])
    await setup.syncer().run_pass()
    updates = {e["data"]["id"]: e for e in setup.events("messageUpdated")[first:]}
    assert sorted(updates) == sorted([starred, plain])  # one event per message
    box = fake.mailbox(email)

    moved = updates[plain]
    assert moved["path"] == "Work"  # the mailbox it is in now
    assert moved["data"] == {
        "id": plain,
        "emailId": plain,
        "threadId": box.messages[plain].thread_id,
        "changes": {"labels": {"added": ["Work"], "deleted": ["\\Inbox"], "value": ["Work"]}},
    }
    both = updates[starred]["data"]
    assert both["changes"] == {
        "flags": {"added": ["\\Seen"], "value": ["\\Flagged", "\\Seen"]},
        # value is the message's whole labels field, as listings show it (\\Starred included)
        "labels": {"added": ["Work"], "deleted": ["\\Inbox"], "value": ["Work", "\\Starred"]},
    }

    # a label taken off, nothing added: no empty "added" side
    fake.modify_as_other_client(email, plain, remove=[setup.work])
    await setup.syncer().run_pass()
    [last] = [e for e in setup.events("messageUpdated") if e["data"]["id"] == plain][1:]
    assert last["data"]["changes"] == {"labels": {"deleted": ["Work"], "value": []}}
    assert last["path"] == "[Gmail]/All Mail"
