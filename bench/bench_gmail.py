"""Gmail API backend: requests and quota units per operation, and a first index's wall time.

Runs the backend and the sync engine in-process against the fake Google (which counts every
call and its quota units, batch parts one by one) and a private Redis. Prints, per operation,
what mailgate spent next to the fewest Gmail calls the API allows for the same answer:

- a listing page of 20 (exact total, summaries with attachments and text ids): labels.get +
  messages.list + 20 messages.get (format=full cut by ``fields`` to the MIME tree: the same 5
  units a message as format=metadata)
- reading one message: one messages.get (format=raw)
- each new message announced: one messages.get (its summary), history.list amortized
- the first (full) index of a 10,000-message account: one messages.list per 500 ids of the
  account and of each label (label bits without fetching messages), against the naive
  messages.get per message; the Redis memory of its index (packed 12-byte records); the cost
  of an interrupted first index resumed (pages listed twice); then its wall time with 50 ms
  added to every response.

Usage: ``python -m bench.bench_gmail [messages]`` (default 10000).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis
from tests.fakes.google import MODIFY_SCOPE, FakeGoogle, start_fake_google
from tests.servers.redis import start_redis

from mailgate.backends.base import PageRequest, ReadOptions
from mailgate.backends.gmail.backend import GmailBackend
from mailgate.backends.gmail.baseline import FirstIndex
from mailgate.backends.gmail.client import GmailClient, close_shared_http
from mailgate.backends.gmail.index import LabelBits, index_memory
from mailgate.backends.gmail.labels import LabelCache
from mailgate.backends.gmail.quota import QuotaBudget, units_of
from mailgate.backends.gmail.sync import GmailSyncer
from mailgate.domain.sync import SyncOptions
from mailgate.store.commit import Batch, Committer
from mailgate.store.redis import connect

LATENCY = 0.05  # seconds added to every response for the wall-time run
PAGE = 20
NEW_MESSAGES = 50


class StaticTokens:
    def __init__(self, user: str, token: str) -> None:
        self.user, self.token = user, token

    async def access_token(self, account: str, *, force_refresh: bool = False) -> tuple[str, str]:
        return self.user, self.token


def mail(n: int) -> bytes:
    return (
        f"From: Sender {n} <s{n}@example.com>\r\nTo: me@example.com\r\n"
        f"Subject: bench {n}\r\nMessage-ID: <b{n}@example.com>\r\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nbody {n}\r\n"
    ).encode()


def populate(fake: FakeGoogle, email: str, count: int) -> dict[str, int]:
    box = fake.mailbox(email)
    work = box.create_label({"name": "Work"}).id
    sizes = {"INBOX": 0, "UNREAD": 0, "STARRED": 0, work: 0}
    base = 1_700_000_000_000
    for n in range(count):
        labels = ["INBOX"] if n % 3 else []
        if n % 4 == 0:
            labels.append("UNREAD")
        if n % 50 == 0:
            labels.append("STARRED")
        if n % 7 == 0:
            labels.append(work)
        for label in labels:
            sizes[label] += 1
        fake.deliver(email, mail(n), labels, internal_date_ms=base + n * 1000)
    return sizes


class Counter:
    def __init__(self, fake: FakeGoogle, email: str) -> None:
        self.fake, self.email = fake, email
        self.mark()

    def mark(self) -> None:
        stats = self.fake.stats(self.email)
        self.requests, self.units = stats.requests, stats.units

    def delta(self) -> tuple[int, int]:
        stats = self.fake.stats(self.email)
        out = (stats.requests - self.requests, stats.units - self.units)
        self.mark()
        return out


def line(name: str, ours: tuple[int, int], http: int, best: tuple[int, int]) -> str:
    return (
        f"| {name} | {ours[0]} | {ours[1]} | {http} | {best[0]} | {best[1]} | "
        f"{ours[1] / best[1] if best[1] else float('nan'):.2f} |"
    )


async def forget(redis: Redis) -> None:
    """Drop the bench account's sync state (its first index starts over)."""
    doomed = [key async for key in redis.scan_iter(match="mg:{bench}:*", count=1000)]
    if doomed:
        await redis.delete(*doomed)


class Interrupted(Exception):
    pass


class StoppingCommitter(Committer):
    """Commits until ``limit`` page commits, then fails like a process that died there."""

    def __init__(self, redis: Redis, limit: int | None) -> None:
        super().__init__(redis, "bench", None)
        self.limit, self.commits = limit, 0

    async def commit(self, batch: Batch) -> None:
        if self.limit is not None and self.commits >= self.limit:
            raise Interrupted
        await super().commit(batch)
        self.commits += 1


async def pages_of_first_index(
    redis: Redis,
    client: Callable[[], GmailClient],
    backend: GmailBackend,
    options: SyncOptions,
    limit: int | None,
) -> int:
    """messages.list calls of one first-index run (stopped after ``limit`` page commits)."""
    committer = StoppingCommitter(redis, limit)
    gmail = client()
    syncer = GmailSyncer("bench", gmail, LabelCache(backend._fetch_labels), redis,
                         committer, options)  # fmt: skip
    first = FirstIndex(syncer, await syncer.labels.get(fresh=True))
    syncer.bits = await LabelBits.load(redis, "bench")
    try:
        await first.run(announce=False)
    except* Interrupted:
        pass
    return gmail.stats.by_method.get("messages.list", 0)


async def run(count: int) -> None:
    fake = start_fake_google(quota_units_per_second=None)
    redis_dir = Path(tempfile.mkdtemp(prefix="mg-bench-gmail-"))
    redis_server = start_redis(redis_dir)
    redis = connect(redis_server.url)
    try:
        email = "bench@gmail.test"
        token = fake.add_user(email, (MODIFY_SCOPE,))
        started = time.perf_counter()
        sizes = populate(fake, email, count)
        print(f"populated {count} messages in {time.perf_counter() - started:.1f} s\n")
        tokens = StaticTokens(email, token)

        def client() -> GmailClient:
            return GmailClient("bench", tokens, fake.url, budget=QuotaBudget())

        backend = GmailBackend("bench", client())
        counter = Counter(fake, email)
        print(
            "| operation | requests | quota units | HTTP round trips | fewest requests | fewest units | units ratio |"
        )
        print("|---|---|---|---|---|---|---|")

        await backend.list_mailboxes()  # warm the label cache, as a live backend has it
        counter.mark()
        before = backend.client.stats.requests
        page = await backend.list_messages("INBOX", PageRequest(page_size=PAGE))
        assert len(page["messages"]) == PAGE and page["total"] == sizes["INBOX"]
        best = (
            2 + PAGE,
            units_of("labels.get") + units_of("messages.list") + PAGE * units_of("messages.get"),
        )
        print(
            line(
                f"listing page of {PAGE}",
                counter.delta(),
                backend.client.stats.requests - before,
                best,
            )
        )

        before = backend.client.stats.requests
        await backend.get_message(page["messages"][0]["id"], ReadOptions(text_type="*"))
        print(line("read one message", counter.delta(), backend.client.stats.requests - before,
                   (1, units_of("messages.get"))))  # fmt: skip

        options = SyncOptions(indexer="full")
        sync_client = client()
        syncer = GmailSyncer("bench", sync_client, LabelCache(backend._fetch_labels), redis,
                             Committer(redis, "bench", None), options)  # fmt: skip
        await forget(redis)
        counter.mark()
        started = time.perf_counter()
        await syncer.run_pass()
        elapsed = time.perf_counter() - started
        index_cost = counter.delta()
        tracked = [
            lab for lab in fake.mailbox(email).labels if not lab.startswith(("CATEGORY_", "CHAT"))
        ]
        lists = math.ceil(count / 500) + sum(
            max(1, math.ceil(sizes.get(lab, 0) / 500)) for lab in tracked
        )  # an empty label still takes one call to learn it is empty
        best = (1 + lists, units_of("getProfile") + lists * units_of("messages.list"))
        # + labels.list and the first history.list of the pass (mailgate's own overhead)
        naive = (1 + math.ceil(count / 500) + count,
                 units_of("getProfile") + math.ceil(count / 500) * 5 + count * units_of("messages.get"))  # fmt: skip
        print(line(f"first index, {count} messages (vs list per label)", index_cost,
                   sync_client.stats.requests, best))  # fmt: skip
        print(line(f"first index, {count} messages (vs get per message)", index_cost,
                   sync_client.stats.requests, naive))  # fmt: skip

        for n in range(NEW_MESSAGES):
            fake.deliver(email, mail(count + n), ["INBOX", "UNREAD"])
        before = sync_client.stats.requests
        counter.mark()
        await syncer.run_pass()
        requests, units = counter.delta()
        http = sync_client.stats.requests - before
        print(
            f"| each new message announced ({NEW_MESSAGES} in one pass) | "
            f"{requests / NEW_MESSAGES:.2f} | {units / NEW_MESSAGES:.2f} | {http / NEW_MESSAGES:.2f} | "
            f"1 | {units_of('messages.get')} | {units / NEW_MESSAGES / units_of('messages.get'):.2f} |"
        )
        memory = await index_memory(redis, "bench", syncer.chunk_bits or 0)
        print(f"\nindex: {memory} bytes of Redis for {count + NEW_MESSAGES} messages "
              f"({memory / (count + NEW_MESSAGES):.1f} B/message); first index {elapsed:.2f} s "
              f"without added latency")  # fmt: skip

        # an interrupted first index: stopped after a third of its pages, then resumed
        await forget(redis)
        whole = await pages_of_first_index(redis, client, backend, options, None)
        await forget(redis)
        before_stop = await pages_of_first_index(redis, client, backend, options, whole // 3)
        resumed = await pages_of_first_index(redis, client, backend, options, None)
        print(f"first index stopped after {whole // 3 - 1} of {whole} pages committed, resumed: "
              f"{before_stop} + {resumed} messages.list calls "
              f"({before_stop + resumed - whole} listed twice)")  # fmt: skip

        fake.set_latency(LATENCY)
        await forget(redis)
        slow = GmailSyncer("bench", client(), LabelCache(backend._fetch_labels), redis,
                           Committer(redis, "bench", None), options)  # fmt: skip
        started = time.perf_counter()
        await slow.run_pass()
        elapsed = time.perf_counter() - started
        sequential = (1 + best[0]) * LATENCY
        print(f"first index with {LATENCY * 1000:.0f} ms per response: {elapsed:.2f} s "
              f"(the fewest calls one after another: {sequential:.2f} s; "
              f"a get per message, 100 at a time in batches: "
              f"{(count / 100 + count / 500) * LATENCY:.2f} s plus {count * 5 / 250:.0f} s of quota)")  # fmt: skip
    finally:
        await close_shared_http()
        await redis.aclose()
        redis_server.stop()
        fake.stop()
        shutil.rmtree(redis_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
