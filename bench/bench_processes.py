"""One sync process against three on the same machine, holding the same idle accounts.

Starts a Dovecot with N users. Then twice, each time on a fresh Redis: one ``--role api``
process (registration only) and K ``mailgate serve --role sync`` processes (K = 1, the
baseline, then K = 3), all idle until N accounts (fast indexer) are registered through the API
process; then the script waits until every account is ``connected`` (one IMAP connection in
NOTIFY + IDLE each) and measures each sync process's resident memory, against the same process
before any account existed.

Figures: RSS per process and per account, accounts per process at the same RSS (how many
accounts a process of the three-process setup holds within the RSS of the single process),
time from the first registration until all are connected; each three/one.

Run: ``python -m bench.bench_processes [accounts]`` (default 600).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.integration.helpers import imap_account
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import start_redis

from bench.bench_capacity import raise_limits, rss_kb
from bench.bench_failover import add_users
from bench.common import servers

SECRET = "bench-processes-secret"


@dataclass
class Run:
    processes: int
    base_rss: list[int]  # KB per sync process before any account
    rss: list[int]  # KB per sync process once all are connected
    owned: list[int]  # accounts per sync process
    registered: float  # seconds to register every account
    connected: float  # seconds from the first registration until all connected

    @property
    def per_account_kb(self) -> float:
        return (sum(self.rss) - sum(self.base_rss)) / max(1, sum(self.owned))

    @property
    def mean_rss(self) -> float:
        return sum(self.rss) / len(self.rss)

    @property
    def mean_base(self) -> float:
        return sum(self.base_rss) / len(self.base_rss)

    def accounts_at(self, rss_kb: float) -> float:
        """Accounts one of these processes holds within ``rss_kb`` of resident memory."""
        return (rss_kb - self.mean_base) / self.per_account_kb


def run(dc, users: list[tuple[str, str]], processes: int) -> Run:  # type: ignore[no-untyped-def]
    redis_dir = Path(tempfile.mkdtemp(prefix="mg-bench-proc-redis-"))
    rs = start_redis(redis_dir)
    env = {"MAILGATE_LOG_LEVEL": "warning"}

    def process(role: str) -> MailgateProcess:
        data = Path(tempfile.mkdtemp(prefix="mg-bench-proc-"))
        return MailgateProcess(
            data, redis_url=rs.url, secret=SECRET, env=env, extra_args=("--role", role)
        )

    api = process("api").start()
    syncs = [process("sync").start() for _ in range(processes)]
    pids = [p.pid or 0 for p in syncs]
    try:
        time.sleep(5)
        base_rss = [rss_kb(pid) for pid in pids]
        count = len(users)
        with api.client() as http:
            started = time.monotonic()
            for name, password in users:
                body = imap_account(
                    f"{name}-{uuid.uuid4().hex[:4]}", name, password, dc.host, dc.imap_port
                )
                body["imapIndexer"] = "fast"
                http.post("/v1/account", json=body).raise_for_status()
            registered = time.monotonic() - started
            while True:
                stats = http.get("/v1/stats", timeout=60).json()
                if stats["connections"].get("connected", 0) >= count:
                    break
                if time.monotonic() - started > 600:
                    raise SystemExit(f"not all connected after 600 s: {stats['connections']}")
                time.sleep(0.5)
            connected = time.monotonic() - started
            owned = {n["pid"]: int(n.get("accounts", 0)) for n in stats["nodes"]}
        time.sleep(8)  # a heartbeat or two: owned counts settle, allocations after connect
        rss = [rss_kb(pid) for pid in pids]
        with api.client() as http:
            owned = {
                n["pid"]: int(n.get("accounts", 0)) for n in http.get("/v1/stats").json()["nodes"]
            }
    finally:
        for p in [*syncs, api]:
            p.stop()
        rs.stop()
    return Run(
        processes=processes,
        base_rss=base_rss,
        rss=rss,
        owned=[owned.get(str(pid), 0) for pid in pids],
        registered=registered,
        connected=connected,
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    with servers() as (dc, _rs):
        raise_limits(dc, count)
        users = add_users(dc, "pr", count)
        one = run(dc, users, 1)
        print(f"one: {one}")
        three = run(dc, users, 3)
        print(f"three: {three}")

    def line(name: str, a: float, b: float, unit: str, digits: int = 0) -> None:
        ratio = b / a if a else float("inf")
        print(f"| {name} | {a:.{digits}f} {unit} | {b:.{digits}f} {unit} | {ratio:.2f} |")

    print(f"\n{count} idle IMAP accounts (NOTIFY+IDLE each): one sync process vs three\n")
    print("| figure | one process (baseline) | three processes | ratio three/one |")
    print("|---|---|---|---|")
    line("accounts per process", count / 1, count / 3, "", 0)
    print(f"| accounts held (per process) | {one.owned} | {three.owned} | — |")
    line("RSS per process, before any account", one.mean_base / 1024, three.mean_base / 1024, "MB")
    line("RSS per process, all connected", one.mean_rss / 1024, three.mean_rss / 1024, "MB")
    line("RSS of all sync processes", sum(one.rss) / 1024, sum(three.rss) / 1024, "MB")
    line(
        "RSS per account (above the empty process)", one.per_account_kb, three.per_account_kb, "KB"
    )
    budget = one.mean_rss
    line(
        f"accounts per process within {budget / 1024:.0f} MB RSS",
        one.accounts_at(budget),
        three.accounts_at(budget),
        "",
    )
    line(
        "time from the first registration to all connected", one.connected, three.connected, "s", 1
    )
    line("registering the accounts over the API", one.registered, three.registered, "s", 1)


if __name__ == "__main__":
    main()
