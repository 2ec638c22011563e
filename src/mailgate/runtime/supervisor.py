"""The supervisor: claims accounts through leases and runs one :class:`AccountRunner` for each.

Every ``RECONCILE_INTERVAL`` it sends a heartbeat, renews its leases (stopping the runner of any
lease it lost), gives back accounts above its fair share (accounts / live sync processes, capped
by ``max_accounts``) and claims unowned ones up to that share. Account lifecycle messages on the
control channel (added, updated, deleted, reconnect) take effect at once. All runner tasks are
owned by the supervisor and stopped, with LOGOUT and lease release, on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mailgate import __version__
from mailgate.backends.base import Watcher
from mailgate.domain.account import AccountRecord
from mailgate.runtime.runner import AccountJournal, AccountRunner
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.control import publish_control
from mailgate.store.events import EventLog
from mailgate.store.leases import LeaseStore

RECONCILE_INTERVAL = 3.0  # seconds between heartbeats / lease renewals (lease TTL is 10 s)
CLAIMS_PER_ROUND = 1000  # accounts claimed per reconcile round (logins are paced by the runners)
CLAIM_CONCURRENCY = 50  # claims in flight at once within a round
SILENT_AFTER_MS = int(2 * RECONCILE_INTERVAL * 1000)  # no heartbeat this long: probably dead
SUSPECT_INTERVAL = 0.5  # seconds between reconciles while some process looks dead
STOP_TIMEOUT = 5.0  # seconds a runner gets to log out when stopped

log = structlog.get_logger("mailgate.supervisor")

# builds an account's watcher (None: nothing to watch) and its resync delay, given the fence
WatcherFactory = Callable[[AccountRecord, int], Awaitable[tuple[Watcher | None, float]]]


class Supervisor:
    def __init__(
        self,
        redis: Redis,
        accounts: AccountStore,
        events: EventLog,
        leases: LeaseStore,
        watcher_factory: WatcherFactory,
        *,
        roles: str,
        run_accounts: bool,
        max_accounts: int,
    ) -> None:
        self.redis = redis
        self.accounts = accounts
        self.events = events
        self.leases = leases
        self.watcher_factory = watcher_factory
        self.roles = roles
        self.run_accounts = run_accounts
        self.max_accounts = max_accounts
        self.runners: dict[str, tuple[AccountRunner, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._started = time.time()
        self.ready = False
        self.journal: AccountJournal | None = None  # per-account log lines (set by the wiring)

    @property
    def node_id(self) -> str:
        return self.leases.node_id

    async def run(self) -> None:
        """Run until cancelled; then stop every runner and release its lease."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._control_loop())
                group.create_task(self._reconcile_loop())
        except asyncio.CancelledError:
            await asyncio.shield(self._stop_all())
            raise

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.reconcile()
                self.ready = True
            except (RedisError, OSError) as exc:
                log.warning("reconcile failed", error=str(exc))
            self._wake.clear()
            # a process that missed two heartbeats is probably dead: look often until its
            # leases expire, so its accounts move within a fraction of a second of that
            wait = RECONCILE_INTERVAL
            with contextlib.suppress(RedisError, OSError):
                if self.run_accounts and await self.leases.silent_nodes(SILENT_AFTER_MS):
                    wait = SUSPECT_INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def reconcile(self) -> None:
        await self.leases.heartbeat(
            {
                "roles": self.roles,
                "host": socket.gethostname(),
                "pid": str(os.getpid()),
                "version": __version__,
                "started": str(int(self._started * 1000)),
                "accounts": str(len(self.runners)),
            }
        )
        if not self.run_accounts:
            return
        # a runner task that ended (it should not) is dropped and claimed again
        for account, (_, task) in list(self.runners.items()):
            if task.done():
                log.error("runner ended unexpectedly", account=account)
                await self._stop_runner(account, release=True)
        # renew what we hold (one round trip); stop runners whose lease was lost
        held = list(self.runners)
        for account, renewed in zip(held, await self.leases.renew_many(held), strict=True):
            if not renewed:
                log.warning("lease lost", account=account)
                await self._stop_runner(account, release=False)
        share, total, running = await self._fleet()
        if len(self.runners) > share + 1:
            for account in list(self.runners)[share:]:
                await self._stop_runner(account, release=True)
            return
        if len(self.runners) >= share or running >= total:
            return  # our share, or every account runs somewhere: no need to read every owner
        ids = await self.accounts.ids()
        owners = await self.leases.owners(ids)
        wanted = min(share - len(self.runners), CLAIMS_PER_ROUND)
        free = [a for a, o in zip(ids, owners, strict=True) if o is None and a not in self.runners]
        # claims run side by side (each is a few Redis round trips): after a failover hundreds
        # of accounts are free at once; their logins are then paced by the runners
        for start in range(0, min(wanted, len(free)), CLAIM_CONCURRENCY):
            chunk = free[start : min(start + CLAIM_CONCURRENCY, wanted)]
            await asyncio.gather(*(self._start(account) for account in chunk))
        if len(free) > wanted:  # more than our share is free (a process died): the others
            await publish_control(self.redis, "wake", "")  # look now, not at their next round

    async def _start(self, account: str) -> bool:
        record = await self.accounts.get(account)
        if record is None:
            return False
        fence = await self.leases.claim(account)
        if fence is None:
            return False
        try:
            watcher, resync_delay = await self.watcher_factory(record, fence)
        except Exception as exc:  # a broken record must not stop the others
            log.error("cannot build watcher", account=account, error=str(exc))
            await self.leases.release(account)
            return False
        runner = AccountRunner(
            account,
            watcher,
            self.accounts,
            self.events,
            node_id=self.node_id,
            resync_delay=resync_delay,
            on_lease_lost=self._lease_lost,
            journal=self.journal,
        )
        task = asyncio.create_task(runner.run(), name=f"runner:{account}")
        self.runners[account] = (runner, task)
        log.info("account claimed", account=account, fence=fence)
        return True

    async def _fleet(self) -> tuple[int, int, int]:
        """(this process's fair share: accounts ÷ live sync processes capped by max_accounts;
        the number of accounts; how many the live sync processes ran at their last heartbeat)."""
        total = await self.accounts.count()
        counts = await self.leases.live_counts("sync")
        share = min(self.max_accounts, math.ceil(total / max(1, len(counts))))
        return share, total, sum(counts.values())

    async def _below_share(self, account: str) -> bool:
        """Whether this process should try to run ``account``, not yet its own."""
        if not self.run_accounts or account in self.runners:
            return False
        share, _, _ = await self._fleet()
        return len(self.runners) < share

    async def _stop_runner(self, account: str, *, release: bool) -> None:
        entry = self.runners.pop(account, None)
        if entry is None:
            return
        _, task = entry
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, STOP_TIMEOUT)
        if release:
            with contextlib.suppress(RedisError, OSError):
                await self.leases.release(account)

    def _lease_lost(self, account: str) -> None:
        """A runner's fenced write was refused: stop it; the next reconcile claims afresh."""
        task = asyncio.create_task(self._stop_runner(account, release=True))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self._wake.set()

    async def _stop_all(self) -> None:
        accounts = list(self.runners)
        await asyncio.gather(
            *(self._stop_runner(a, release=True) for a in accounts), return_exceptions=True
        )
        with contextlib.suppress(RedisError, OSError):
            await self.leases.leave()

    async def _control_loop(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.CONTROL_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    await self._on_control(json.loads(message["data"]))
            except (RedisError, OSError) as exc:
                log.warning("control channel lost", error=str(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _on_control(self, message: dict[str, str]) -> None:
        kind, account = message.get("type"), message.get("account", "")
        if kind == "deleted":
            await self._stop_runner(account, release=True)
        elif kind == "updated":
            if account in self.runners:
                await self._stop_runner(account, release=True)
                self._wake.set()
        elif kind == "reconnect":
            entry = self.runners.get(account)
            if entry is not None:
                entry[0].request_reconnect()
        elif kind == "sync":
            entry = self.runners.get(account)
            if entry is not None:
                entry[0].request_sync()
        elif kind == "wake":
            self._wake.set()
        elif kind == "added" and await self._below_share(account):
            # claim the new account directly (the lease decides between processes) instead of a
            # reconcile pass, which reads every account's owner: registering thousands of
            # accounts one by one would cost a full scan each (another process may win the
            # claim; the periodic pass catches anything missed)
            await self._start(account)
