"""Graph backend costs, counted by the fake Graph: requests per operation and wall time.

Prints, for each operation, the requests the fake saw and the fewest the Graph API allows:
a listing page of 20, one message read, one new message announced (delta pass of the folder),
the first (full) index of a 10,000-message Inbox, then the wall time of that index and of 20
parallel reads with 50 ms latency per response under the 4-in-flight limit.

    python bench/bench_graph.py [--messages 10000] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests.fakes.graph import FakeGraph, start_fake_graph
from tests.servers.redis import start_redis

from mailgate.backends.base import PageRequest, ReadOptions
from mailgate.backends.graph.backend import GraphBackend
from mailgate.backends.graph.client import GraphClient, GraphHttp
from mailgate.backends.graph.folders import Folders
from mailgate.backends.graph.sync import DELTA_PAGE_SIZE, GraphSyncer, Hints
from mailgate.domain.sync import SyncOptions
from mailgate.store.commit import Committer
from mailgate.store.redis import connect

UPN = "bench@contoso.test"


def mime(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.test>"
    msg["To"] = UPN
    msg["Subject"] = f"Message {i}"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    msg.set_content(f"Body {i}\n")
    return msg.as_bytes()


class Tokens:
    def __init__(self, token: str) -> None:
        self.token = token

    async def access_token(self, account: str, *, force_refresh: bool = False) -> tuple[str, str]:
        return UPN, self.token


def requests(fake: FakeGraph) -> int:
    return int(fake.stats(UPN)["requests"])


SENT: list[int] = [0]


def row(name: str, used: int, fewest: int, extra: str = "") -> None:
    """``used``: requests the fake served (batch parts count one each); ``http``: HTTP
    requests mailgate sent (a $batch counts once)."""
    print(f"{name:<44} {used:>8} {SENT[0]:>6} {fewest:>8}  {extra}")


async def run(count: int, latency: float) -> None:
    fake = start_fake_graph()
    token = fake.add_user(UPN)
    ids = [fake.deliver(UPN, mime(i)) for i in range(count)]
    redis_server = start_redis(pathlib.Path(tempfile.mkdtemp()))
    redis = connect(redis_server.url)
    http = GraphHttp()
    client = GraphClient(http, api_url=fake.url, root="/me", account="bench", tokens=Tokens(token))
    backend = GraphBackend(client)
    folders = Folders(client)

    async def options() -> SyncOptions:
        return SyncOptions(indexer="full", notify_from=datetime.now(UTC))

    syncer = GraphSyncer("bench", client, folders, redis, Committer(redis, "bench", None), options)
    print(f"{'operation':<44} {'requests':>8} {'http':>6} {'fewest':>8}")

    def mark() -> None:
        fake.reset_stats()
        SENT[0] = -client.requests

    def done() -> None:
        SENT[0] += client.requests

    try:
        await backend.folders.tree()
        mark()
        await backend.list_messages("INBOX", PageRequest(page_size=20))
        done()
        row("listing page of 20", requests(fake), 1)
        mark()
        await backend.get_message(ids[0], ReadOptions(text_type="*"))
        done()
        row("message read (details + text)", requests(fake), 1, "(one $batch)")

        mark()
        start = time.perf_counter()
        await syncer.run_pass(Hints())
        first = time.perf_counter() - start
        boxes = len((await folders.tree()).folders)
        fewest = -(-count // 1000) + boxes - 1 + 1
        done()
        row(f"first index of {count} messages", requests(fake), fewest,
            f"{first:.2f}s, {DELTA_PAGE_SIZE}/page, {boxes} folders")  # fmt: skip

        inbox = next(f for f in (await folders.tree()).folders if f.path == "INBOX")
        fake.deliver(UPN, mime(count + 1))
        mark()
        await syncer.run_pass(Hints(full=False, folders={inbox.id}))
        done()
        row("new message announced (hinted folder)", requests(fake), 1)

        fake.set_latency(latency)
        mark()
        await redis.flushdb()
        start = time.perf_counter()
        await syncer.run_pass(Hints())
        slow_first = time.perf_counter() - start
        done()
        row(f"first index, {latency * 1000:.0f} ms latency", requests(fake), fewest,
            f"{slow_first:.2f}s")  # fmt: skip
        mark()
        start = time.perf_counter()
        await asyncio.gather(*(backend.get_message(i, ReadOptions()) for i in ids[:20]))
        wall = time.perf_counter() - start
        stats = fake.stats(UPN)
        done()
        row("20 parallel reads", stats["requests"], 20,
            f"{wall:.2f}s (floor {20 / 4 * latency:.2f}s at 4 in flight), "
            f"max in flight {stats['max_concurrency']}, throttled {stats['throttled']}")  # fmt: skip
    finally:
        await http.aclose()
        await redis.aclose()
        redis_server.stop()
        fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.latency))


if __name__ == "__main__":
    main()
