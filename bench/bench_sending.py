"""Outbox throughput: messages/second through the queue vs a bare aiosmtplib loop.

Starts a private Redis and an SMTP capture server (aiosmtpd) on loopback. Both sides send the
same N prebuilt messages (built with the submit builder) to the capture, over one connection:

- mailgate: enqueue all N in the outbox (the submit script, as the API does), then an
  ``OutboxWorker`` (in process) claims, delivers with leases and state marks, appends the
  ``messageSent`` events and finishes the jobs; timed from the first enqueue to the last message
  received by the capture (enqueue time is also shown on its own);
- baseline: one ``aiosmtplib.SMTP`` connection, ``sendmail`` in a loop.

Run: ``python -m bench.bench_sending [messages]`` (default 2000).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
from tests.servers.redis import start_redis
from tests.servers.smtp import SmtpCapture, start_smtp_capture

from mailgate.domain.account import AccountRecord, SmtpConfig
from mailgate.services.sending.builder import Addr, Draft, build_message
from mailgate.services.sending.gateways import GatewayService
from mailgate.services.sending.outbox import Outbox, now_ms
from mailgate.services.sending.worker import OutboxWorker
from mailgate.services.settings import SettingsService
from mailgate.store.accounts import AccountStore
from mailgate.store.crypto import SecretBox
from mailgate.store.events import EventLog
from mailgate.store.redis import connect

ACCOUNT = "bench-sender"


def messages(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        draft = Draft(
            from_=Addr(f"{ACCOUNT}@example.test", "Bench"),
            to=[Addr(f"rcpt{i % 10}@example.test")],
            subject=f"bench message {i}",
            text=f"Hello number {i}\n" * 20,
            html=f"<p>Hello number {i}</p>" * 20,
        )
        out.append(build_message(draft, domain="example.test").raw)
    return out


async def wait_count(capture: SmtpCapture, count: int) -> None:
    """Until the capture holds ``count`` messages (its own condition, waited for in a thread)."""
    await asyncio.to_thread(capture.wait_for, count, 600.0)


async def run_mailgate(url: str, capture: SmtpCapture, raws: list[bytes]) -> tuple[float, float]:
    redis = connect(url)
    box = SecretBox(secrets.token_hex(16))
    accounts = AccountStore(redis, box)
    host, port = capture.address
    await accounts.save(
        AccountRecord(
            account=ACCOUNT,
            email=f"{ACCOUNT}@example.test",
            smtp=SmtpConfig(host=host, port=port, secure=False),
        )
    )
    outbox = Outbox(redis)
    worker = OutboxWorker(
        redis,
        accounts,
        SettingsService(redis, box),
        EventLog(redis),
        None,
        GatewayService(redis, box),
        node_id="bench",
    )
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)  # worker subscribed and idle
    start = time.perf_counter()
    for i, raw in enumerate(raws):
        qid = f"bench-{i}-{secrets.token_hex(4)}"
        await outbox.enqueue(
            qid,
            raw,
            {
                "account": ACCOUNT,
                "state": "queued",
                "attempts": 10,
                "attemptsMade": 0,
                "messageId": f"<{qid}@example.test>",
                "envelope": {
                    "from": f"{ACCOUNT}@example.test",
                    "to": [f"rcpt{i % 10}@example.test"],
                },
            },
            due_ms=now_ms(),
            reply={},
            account=ACCOUNT,
        )
    enqueued = time.perf_counter() - start
    await wait_count(capture, len(raws))
    total = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await redis.aclose()
    return total, enqueued


async def run_bare(capture: SmtpCapture, raws: list[bytes]) -> float:
    host, port = capture.address
    start = time.perf_counter()
    client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False)
    await client.connect()
    for i, raw in enumerate(raws):
        await client.sendmail(f"{ACCOUNT}@example.test", [f"rcpt{i % 10}@example.test"], raw)
    await client.quit()
    await wait_count(capture, len(raws))
    return time.perf_counter() - start


async def main_async(count: int) -> None:
    redis_dir = Path(tempfile.mkdtemp(prefix="mg-bench-redis-"))
    rs = start_redis(redis_dir)
    capture = start_smtp_capture()
    try:
        raws = messages(count)
        # warm both paths once
        await run_bare(capture, raws[:20])
        capture.clear()
        bare = await run_bare(capture, raws)
        capture.clear()
        ours, enqueue = await run_mailgate(rs.url, capture, raws)
        capture.clear()
    finally:
        capture.stop()
        rs.stop()
        shutil.rmtree(redis_dir, ignore_errors=True)
    print(f"messages: {count} ({sum(map(len, raws)) // count} bytes each), one SMTP connection")
    print("| path | time | messages/s |")
    print("|---|---|---|")
    print(f"| bare aiosmtplib sendmail loop | {bare:.3f} s | {count / bare:.0f} |")
    print(f"| mailgate outbox (enqueue → delivered) | {ours:.3f} s | {count / ours:.0f} |")
    print(f"| of which enqueue (submit script) | {enqueue:.3f} s | {count / enqueue:.0f} |")
    print(f"ratio (outbox / bare throughput): {bare / ours:.2f}")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    asyncio.run(main_async(count))


if __name__ == "__main__":
    main()
