"""Full index of a large folder, resync of the unchanged folder, Redis bytes per message.

Baseline, measured in the same run: a bare imaplib SELECT + ``UID FETCH 1:* (UID FLAGS MODSEQ)``
of the same folder (both sides run once first, to warm Dovecot's caches). Run: ``python -m bench.bench_index [messages]`` (default 100,000).
"""

from __future__ import annotations

import asyncio
import sys
import time

import redis as sync_redis

from bench.common import PASSWORD, USER, bare_imap, row, servers, timed
from mailgate.backends.imap.session import StaticPassword, open_session
from mailgate.backends.imap.sync import AccountSyncer
from mailgate.domain.account import ImapConfig
from mailgate.domain.sync import SyncOptions
from mailgate.store.commit import Committer
from mailgate.store.mailboxes import MailboxRegistry
from mailgate.store.redis import connect


def redis_bytes(url: str, pattern: str) -> int:
    r = sync_redis.Redis.from_url(url)
    try:
        return sum(r.memory_usage(k, samples=0) or 0 for k in r.scan_iter(pattern, count=1000))
    finally:
        r.close()


async def index_once(
    host: str, port: int, url: str, account: str, indexer: str
) -> tuple[float, float]:
    cfg = ImapConfig(host=host, port=port, secure=False)
    client = await open_session(cfg, StaticPassword(USER, PASSWORD), ignore_cert_errors=True)
    redis = connect(url)
    try:
        syncer = AccountSyncer(
            account, redis, MailboxRegistry(redis), Committer(redis, account, None),
            SyncOptions(indexer=indexer, paths=("INBOX",)), chunk=25_000,
        )  # fmt: skip
        start = time.perf_counter()
        await syncer.run_pass(client)
        first = time.perf_counter() - start
        resyncs = []
        for _ in range(5):
            start = time.perf_counter()
            await syncer.run_pass(client)
            resyncs.append(time.perf_counter() - start)
        resyncs.sort()
        return first, resyncs[len(resyncs) // 2]
    finally:
        await client.logout()
        await redis.aclose()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with servers() as (dc, rs):
        dc.fill(USER, "INBOX", count)
        conn = bare_imap(dc)

        def bare_index() -> None:
            conn.select("INBOX", readonly=True)
            conn.uid("FETCH", "1:*", "(UID FLAGS MODSEQ)")

        bare_index()  # warm Dovecot's own caches for both sides
        asyncio.run(index_once(dc.host, dc.imap_port, rs.url, "warmup", "full"))
        bare_fetch = timed(bare_index, repeat=3)
        bare_status = timed(
            lambda: conn.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"), repeat=5
        )
        conn.logout()
        full_first, full_resync = asyncio.run(
            index_once(dc.host, dc.imap_port, rs.url, "full", "full")
        )
        fast_first, fast_resync = asyncio.run(
            index_once(dc.host, dc.imap_port, rs.url, "fast", "fast")
        )
        full_bytes = redis_bytes(rs.url, "mg:{full}:*")
        fast_bytes = redis_bytes(rs.url, "mg:{fast}:*")
    print(f"\nIndexing one {count:,}-message INBOX (loopback Dovecot), median times\n")
    print("| figure | mailgate | baseline | ratio |")
    print("|---|---|---|---|")
    print(
        row("full index vs bare SELECT + UID FETCH 1:* (UID FLAGS MODSEQ)", full_first, bare_fetch)
    )
    print(
        row("fast index vs bare SELECT + UID FETCH 1:* (UID FLAGS MODSEQ)", fast_first, bare_fetch)
    )
    print(row("resync, unchanged (full) vs bare STATUS", full_resync, bare_status))
    print(row("resync, unchanged (fast) vs bare STATUS", fast_resync, bare_status))
    print(
        f"\nRedis memory, full indexer: {full_bytes / count:.1f} bytes per message ({full_bytes:,} B)"
    )
    print(f"Redis memory, fast indexer: {fast_bytes:,} bytes for the account (one folder)")


if __name__ == "__main__":
    main()
