"""Idle IMAP accounts held by one mailgate process: RSS and CPU per account, time to connect.

Starts a Dovecot with N users (process limits raised), a Redis, and one mailgate process
(`--role sync`, logins paced at the default rate), registers N accounts through the API and waits
until all are `connected` (each holds one IMAP connection in NOTIFY+IDLE). Then it samples the
service's resident memory and CPU time over an idle minute, against the same process with no
accounts (the baseline, measured first in the same run).

Run: ``python -m bench.bench_capacity [accounts]`` (default 2000).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.integration.helpers import imap_account
from tests.servers.mailgate import MailgateProcess

from bench.common import servers

IDLE_SAMPLE = 60.0  # seconds of idle CPU measured
SETTLE = 30.0  # seconds after the last account connected before sampling (first syncs finish)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = 100.0
    return (int(fields[11]) + int(fields[12])) / ticks


def raise_limits(dc, count: int) -> None:  # type: ignore[no-untyped-def]
    """More IMAP processes than the test config allows, then a restart."""
    dc.stop()
    text = dc.config_path.read_text()
    text = text.replace("process_limit = 1024", f"process_limit = {count + 200}")
    text += f"\ndefault_process_limit = {count + 200}\ndefault_client_limit = {2 * count + 400}\n"
    dc.config_path.write_text(text)
    dc._spawn_and_wait()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    with servers() as (dc, rs):
        raise_limits(dc, count)
        users = []
        for i in range(count):
            name, password = f"cap{i}", f"pw{i}"
            (dc.users_dir / name).write_text(f"{name}:{{PLAIN}}{password}::::::\n")
            users.append((name, password))
        data = Path(tempfile.mkdtemp(prefix="mg-bench-cap-"))
        mg = MailgateProcess(
            data, redis_url=rs.url, env={"MAILGATE_LOG_LEVEL": "warning"},
            extra_args=("--role", "sync", "--role", "api"),
        )  # fmt: skip
        mg.start()
        try:
            assert mg.pid is not None
            time.sleep(2)
            base_rss = rss_kb(mg.pid)
            cpu0 = cpu_seconds(mg.pid)
            time.sleep(10)
            base_cpu = (cpu_seconds(mg.pid) - cpu0) / 10
            with mg.client() as http:
                started = time.monotonic()
                for name, password in users:
                    body = imap_account(
                        f"{name}-{uuid.uuid4().hex[:4]}", name, password, dc.host, dc.imap_port
                    )
                    body["imapIndexer"] = "fast"
                    resp = http.post("/v1/account", json=body)
                    resp.raise_for_status()
                registered = time.monotonic() - started
                while True:
                    stats = http.get("/v1/stats", timeout=60).json()
                    connected = stats["connections"].get("connected", 0)
                    if connected >= count or time.monotonic() - started > 1800:
                        break
                    time.sleep(2)
                all_connected = time.monotonic() - started
            time.sleep(SETTLE)
            rss = rss_kb(mg.pid)
            cpu0 = cpu_seconds(mg.pid)
            time.sleep(IDLE_SAMPLE)
            idle_cpu = (cpu_seconds(mg.pid) - cpu0) / IDLE_SAMPLE
        finally:
            mg.stop()
    per_account = (rss - base_rss) / max(1, connected)
    print(f"\n{connected}/{count} idle IMAP accounts in one process (NOTIFY+IDLE each)\n")
    print("| figure | value | baseline (no accounts) | target |")
    print("|---|---|---|---|")
    print(f"| resident memory | {rss / 1024:.0f} MB | {base_rss / 1024:.0f} MB | — |")
    print(f"| resident memory per account | {per_account:.0f} KB | — | ≤ 150 KB |")
    print(f"| CPU while idle | {idle_cpu * 100:.2f} % of a core | {base_cpu * 100:.2f} % | < 5 % |")
    print(f"| registering {count} accounts over the API | {registered:.1f} s | — | — |")
    print(f"| time until all connected | {all_connected:.1f} s | — | — |")


if __name__ == "__main__":
    main()
