"""Shared setup for the benchmark scripts: private Dovecot and Redis on loopback."""

from __future__ import annotations

import contextlib
import imaplib
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.servers.dovecot import Dovecot, make_base_dir, start_dovecot
from tests.servers.redis import RedisServer, start_redis

USER, PASSWORD = "bench", "bench-secret"


@contextlib.contextmanager
def servers() -> Iterator[tuple[Dovecot, RedisServer]]:
    base = make_base_dir("mg-bench-")
    redis_dir = Path(tempfile.mkdtemp(prefix="mg-bench-redis-"))
    dc = start_dovecot(base, {USER: PASSWORD})
    rs = start_redis(redis_dir)
    try:
        yield dc, rs
    finally:
        rs.stop()
        dc.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(redis_dir, ignore_errors=True)


def bare_imap(dc: Dovecot) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(dc.host, dc.imap_port)
    conn.login(USER, PASSWORD)
    conn._simple_command("ENABLE", "CONDSTORE")  # type: ignore[attr-defined]
    return conn


def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Median wall time of ``fn()`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(name: str, ours: float, base: float, unit: str = "s") -> str:
    ratio = ours / base if base else float("inf")
    return f"| {name} | {ours:.4f} {unit} | {base:.4f} {unit} | {ratio:.2f} |"
