"""Failover: kill -9 one of three sync processes; time until all its accounts run elsewhere.

Starts a Dovecot with N users, a Redis, three ``mailgate serve --role sync`` processes and one
``--role api`` process (registration only, so killing a sync process never touches the API).
N accounts (fast indexer) spread over the three; when all are ``connected`` and every process
holds its share, one sync process is killed with SIGKILL and the script polls Redis (the lease
keys and the runtime states, one pipelined round trip every 50 ms) until every account it held
has a lease of another process and is ``connected`` under that owner.

Baseline (the floor the design allows): the lease TTL. A dead process's leases are not renewed,
and nobody may take an account before its lease expires, so no failover can be faster than the
time left on the victim's last renewed lease (measured at the kill too; at most the TTL).
The target is 15 s (the bound the scale-out tests use).

Run: ``python -m bench.bench_failover [accounts] [rounds]`` (defaults 200 and 2). Each round
restarts the killed process, waits for the shares to settle again, and kills the next one.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
from tests.integration.helpers import imap_account
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import sync_client

from bench.bench_capacity import raise_limits
from bench.common import servers
from mailgate.domain.account import AccountState, RuntimeState
from mailgate.store import keys
from mailgate.store.leases import LEASE_TTL_MS

SECRET = "bench-failover-secret"
TARGET = 15.0  # seconds
POLL = 0.05
_decode_state = msgspec.msgpack.Decoder(RuntimeState).decode


def add_users(dc, prefix: str, count: int) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    users = []
    for i in range(count):
        name, password = f"{prefix}{i}", f"pw{i}"
        (dc.users_dir / name).write_text(f"{name}:{{PLAIN}}{password}::::::\n")
        users.append((name, password))
    return users


def node_of(r, pid: int) -> str | None:  # type: ignore[no-untyped-def]
    for raw in r.zrange(keys.NODES, 0, -1):
        node = raw.decode()
        if r.hget(keys.node(node), "pid") == str(pid).encode():
            return node
    return None


def snapshot(r, accounts: list[str]) -> list[tuple[str | None, RuntimeState | None]]:  # type: ignore[no-untyped-def]
    """(lease owner, runtime state) of every account, in one pipelined round trip."""
    pipe = r.pipeline(transaction=False)
    for account in accounts:
        pipe.get(keys.lease(account))
        pipe.get(keys.account_state(account))
    raw = pipe.execute()
    out = []
    for i in range(len(accounts)):
        owner, state = raw[2 * i], raw[2 * i + 1]
        out.append((owner.decode() if owner else None, _decode_state(state) if state else None))
    return out


def settled(r, accounts: list[str], nodes: set[str]) -> dict[str, int] | None:  # type: ignore[no-untyped-def]
    """Accounts per owner once every account is connected under its lease owner, the owners
    are exactly ``nodes`` and no one holds more than its share + 1 (else None)."""
    counts: dict[str, int] = {}
    for owner, state in snapshot(r, accounts):
        if owner is None or state is None or state.state is not AccountState.CONNECTED:
            return None
        if state.owner != owner:
            return None
        counts[owner] = counts.get(owner, 0) + 1
    share = -(-len(accounts) // len(nodes))
    if set(counts) != nodes or max(counts.values()) > share + 1:
        return None
    return counts


def wait(probe, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def kill_and_measure(r, victim: MailgateProcess, accounts: list[str]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    assert victim.pid is not None
    node = node_of(r, victim.pid)
    held = [
        a for a, (owner, _) in zip(accounts, snapshot(r, accounts), strict=True) if owner == node
    ]
    pipe = r.pipeline(transaction=False)
    for account in held:
        pipe.pttl(keys.lease(account))
    before = time.monotonic()
    ttls = pipe.execute()
    victim.kill_service_only()
    killed = time.monotonic()
    lease_left = max(ttls) / 1000 - (killed - before)
    first_moved = all_leased = None
    while True:
        now = time.monotonic()
        rows = snapshot(r, held)
        moved = [o not in (None, node) for o, _ in rows]
        if first_moved is None and any(moved):
            first_moved = now - killed
        if all_leased is None and all(moved):
            all_leased = now - killed
        if all(
            o not in (None, node)
            and s is not None
            and s.owner == o
            and s.state is AccountState.CONNECTED
            for o, s in rows
        ):
            connected = now - killed
            break
        if now - killed > 300:
            raise SystemExit("the killed process's accounts did not come back within 300 s")
        time.sleep(POLL)
    return {
        "accounts": float(len(held)),
        "lease_left": lease_left,
        "first_moved": first_moved or 0.0,
        "all_leased": all_leased or 0.0,
        "connected": connected,
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    results: list[dict[str, float]] = []
    with servers() as (dc, rs):
        raise_limits(dc, count)
        users = add_users(dc, "fo", count)
        env = {"MAILGATE_LOG_LEVEL": "warning"}
        if os.environ.get("MAILGATE_LOGINS_PER_SECOND"):  # e.g. to see failover without pacing
            env["MAILGATE_LOGINS_PER_SECOND"] = os.environ["MAILGATE_LOGINS_PER_SECOND"]

        def process(*roles: str) -> MailgateProcess:
            args = tuple(x for role in roles for x in ("--role", role))
            data = Path(tempfile.mkdtemp(prefix="mg-bench-fo-"))
            return MailgateProcess(data, redis_url=rs.url, secret=SECRET, env=env, extra_args=args)

        api = process("api").start()
        syncs = [process("sync").start() for _ in range(3)]
        r = sync_client(rs.url)
        try:
            nodes = {node_of(r, p.pid or 0) for p in syncs}
            accounts = []
            with api.client() as http:
                for name, password in users:
                    account = f"{name}-{uuid.uuid4().hex[:4]}"
                    body = imap_account(account, name, password, dc.host, dc.imap_port)
                    body["imapIndexer"] = "fast"
                    http.post("/v1/account", json=body).raise_for_status()
                    accounts.append(account)
            for n in range(rounds):
                counts = wait(lambda ns=nodes: settled(r, accounts, ns), 300, "accounts spread")
                victim = syncs[n % 3]
                survivors = {node_of(r, p.pid or 0) for p in syncs if p is not victim}
                print(f"round {n + 1}: shares {sorted(counts.values())}; killing pid {victim.pid}")
                result = kill_and_measure(r, victim, accounts)
                results.append(result)
                print("  " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()))
                if n + 1 < rounds:
                    victim.start()
                    fresh = wait(lambda v=victim: node_of(r, v.pid or 0), 30, "heartbeat")
                    nodes = survivors | {fresh}
        finally:
            r.close()
            for p in [*syncs, api]:
                p.stop()
    ttl = LEASE_TTL_MS / 1000
    connected = [x["connected"] for x in results]
    print(f"\nkill -9 of one of three sync processes, {count} accounts in all (fast indexer)\n")
    print("| figure | mailgate | baseline: lease TTL | ratio | target |")
    print("|---|---|---|---|---|")
    for i, x in enumerate(results, start=1):
        print(
            f"| round {i}: {x['accounts']:.0f} accounts of the killed process all `connected` "
            f"elsewhere | {x['connected']:.1f} s | {ttl:.0f} s | {x['connected'] / ttl:.2f} "
            f"| ≤ {TARGET:.0f} s ({x['connected'] / TARGET:.2f} of it) |"
        )
    for i, x in enumerate(results, start=1):
        print(
            f"| round {i}: first lease taken / all taken / lease time left at the kill | "
            f"{x['first_moved']:.1f} / {x['all_leased']:.1f} / {x['lease_left']:.1f} s | — | — | — |"
        )
    print(f"\nmedian {statistics.median(connected):.1f} s over {len(connected)} kills")


if __name__ == "__main__":
    main()
