"""Message API latency against bare IMAP, parallel reads, and memory while streaming 50 MB.

Baselines are measured in the same run against the same Dovecot: a bare imaplib ``UID FETCH`` of
the same 20 envelopes (listing) and of the same whole message (read), on an already selected
connection. Prints a small table of medians and ratios.

Run: ``python -m bench.bench_messages [messages] [repeat]`` (defaults 2,000 and 30; < 2 minutes).
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
from tests.servers.mailgate import MailgateProcess

from bench.common import PASSWORD, USER, servers

FOLDER = "Bench"
BIG_FOLDER = "Big"
BIG_SIZE = 50 * 1024 * 1024
SUMMARY = "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"


def median_of(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up (connections, caches)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def big_message() -> bytes:
    msg = EmailMessage(policy=policy.default)
    msg["From"] = "big@example.test"
    msg["To"] = "bench@example.test"
    msg["Subject"] = "50 MB attachment"
    msg["Message-ID"] = f"<big-{uuid.uuid4().hex}@example.test>"
    msg.set_content("see attachment\n")
    msg.add_attachment(os.urandom(BIG_SIZE), "application", "octet-stream", filename="big.bin")
    return msg.as_bytes(policy=policy.default.clone(linesep="\r\n"))


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("figure", "mailgate", "baseline", "ratio")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with servers() as (dc, rs):
        dc.fill(USER, FOLDER, count)
        dc.create_folder(USER, BIG_FOLDER)
        imap = imaplib.IMAP4(dc.host, dc.imap_port)
        imap.login(USER, PASSWORD)
        imap.append(BIG_FOLDER, None, None, big_message())
        imap.select(FOLDER)

        proc = MailgateProcess(Path(tempfile.mkdtemp(prefix="mg-bench-mg-")), redis_url=rs.url)
        proc.env["MAILGATE_LOG_LEVEL"] = "warning"
        proc.start()
        try:
            rows = run(proc, imap, dc.host, dc.imap_port, count, repeat)
        finally:
            proc.stop()
            imap.logout()
    print(f"\nmessages in {FOLDER}: {count}; median of {repeat} runs; loopback Dovecot\n")
    print(table(rows))


def run(
    proc: MailgateProcess, imap: imaplib.IMAP4, host: str, port: int, count: int, repeat: int
) -> list[tuple[str, str, str, str]]:
    account = "bench"
    rows: list[tuple[str, str, str, str]] = []
    with proc.client() as http:
        body = {
            "account": account,
            "name": "bench",
            "email": "bench@example.test",
            "imapIndexer": "fast",
            "imap": {
                "host": host,
                "port": port,
                "secure": False,
                "tls": {"rejectUnauthorized": False},
                "auth": {"user": USER, "pass": PASSWORD},
            },
        }
        http.post("/v1/account", json=body).raise_for_status()
        url = f"/v1/account/{account}/messages"
        first = http.get(url, params={"path": FOLDER, "pageSize": 20}).json()
        assert first["total"] == count, first
        uids = ",".join(str(m["uid"]) for m in first["messages"])

        ours = median_of(lambda: http.get(url, params={"path": FOLDER}).raise_for_status(), repeat)
        base = median_of(lambda: imap.uid("FETCH", uids, SUMMARY), repeat)
        rows.append(("GET /messages (20/page)", f"{ours * 1e3:.2f} ms", f"{base * 1e3:.2f} ms",
                     f"{ours / base:.2f}"))  # fmt: skip

        msg = first["messages"][0]
        read_url = f"/v1/account/{account}/message/{msg['id']}"
        ours = median_of(
            lambda: http.get(read_url, params={"textType": "*"}).raise_for_status(), repeat
        )
        base = median_of(
            lambda: imap.uid("FETCH", str(msg["uid"]), SUMMARY[:-1] + " BODY.PEEK[])"), repeat
        )
        rows.append(("GET /message", f"{ours * 1e3:.2f} ms", f"{base * 1e3:.2f} ms",
                     f"{ours / base:.2f}"))  # fmt: skip

        ids = [m["id"] for m in first["messages"][:10]]
        sequential, parallel = asyncio.run(parallel_reads(proc, account, ids))
        rows.append(("10 GET /message: parallel vs sequential", f"{parallel * 1e3:.2f} ms",
                     f"{sequential * 1e3:.2f} ms", f"{parallel / sequential:.2f}"))  # fmt: skip

        rows.append(stream_memory(proc, http, account))
    return rows


async def parallel_reads(
    proc: MailgateProcess, account: str, ids: list[str], rounds: int = 7
) -> tuple[float, float]:
    """Median wall time of reading ``ids`` one after another, and all at once."""
    headers = {"Authorization": f"Bearer {proc.token}"}
    limits = httpx.Limits(max_keepalive_connections=len(ids))
    seq: list[float] = []
    par: list[float] = []
    async with httpx.AsyncClient(
        base_url=proc.base_url, headers=headers, timeout=60, limits=limits
    ) as http:
        await asyncio.gather(*(http.get(f"/v1/account/{account}/message/{i}") for i in ids))
        for _ in range(rounds):
            start = time.perf_counter()
            for i in ids:
                (await http.get(f"/v1/account/{account}/message/{i}")).raise_for_status()
            seq.append(time.perf_counter() - start)
            start = time.perf_counter()
            responses = await asyncio.gather(
                *(http.get(f"/v1/account/{account}/message/{i}") for i in ids)
            )
            par.append(time.perf_counter() - start)
            for r in responses:
                r.raise_for_status()
    return statistics.median(seq), statistics.median(par)


def stream_memory(
    proc: MailgateProcess, http: httpx.Client, account: str
) -> tuple[str, str, str, str]:
    assert proc.pid is not None
    pid = proc.pid
    big = http.get(f"/v1/account/{account}/messages", params={"path": BIG_FOLDER}).json()
    (att,) = big["messages"][0]["attachments"]
    idle = rss_kb(pid)
    peak = idle
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kb(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    size = 0
    start = time.perf_counter()
    with http.stream("GET", f"/v1/account/{account}/attachment/{att['id']}") as resp:
        resp.raise_for_status()
        for chunk in resp.iter_bytes():
            size += len(chunk)
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    assert size == BIG_SIZE, size
    speed = size / elapsed / 1e6
    return (
        f"peak RSS streaming 50 MB ({speed:.0f} MB/s)",
        f"{peak / 1024:.1f} MB",
        f"{idle / 1024:.1f} MB idle",
        f"+{(peak - idle) / 1024:.1f} MB",
    )


if __name__ == "__main__":
    main()
