"""The outbox worker: claims due jobs and delivers them, one SMTP connection per sender.

Task tree (one ``asyncio.TaskGroup`` owns everything)::

    OutboxWorker.run
    ├── _listen      pub/sub wake-ups from enqueue (a hint; polling covers lost ones)
    ├── _reap        every REAP_INTERVAL: jobs whose lease expired go back to due
    ├── _renew       every lease/3: extends the leases of every job this worker holds
    ├── _dispatch    claims due jobs (at most ``max_held`` held at once) and hands each to the
    │                lane of its sender (account, or gateway)
    └── _lane(key) × n   delivers its jobs in order over one reused connection; closes it and
                         ends after LANE_IDLE_CLOSE seconds without work

At-least-once with a lease per job: a worker that dies leaves its leases to expire, the reaper
re-queues the jobs, and the states recorded around DATA make sure a message the server accepted
is never sent again (see :mod:`.outbox` and docs/decisions/0002-outbox-exactly-once.md).

Graceful stop (cancellation): no new claims; a delivery on the wire may finish for up to
SHUTDOWN_GRACE seconds; every job still held is released to ``due`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mailgate.backends.smtp.sender import SenderFactory
from mailgate.errors import MailgateError
from mailgate.services.settings import SettingsService
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.events import EventLog

from .delivery import Delivery, PostSend, SenderSlot
from .gateways import GatewayService
from .mailstore import MailStore
from .outbox import LEASE_MS, Job, Outbox, now_ms

log = structlog.get_logger("mailgate.sending")

MAX_HELD = 64  # jobs one worker process holds (claimed, queued in lanes or in delivery)
POLL_INTERVAL = 1.0  # seconds between schedule checks when no wake-up arrives
REAP_INTERVAL = 2.0  # seconds between scans for expired leases
LANE_IDLE_CLOSE = 5.0  # seconds a lane keeps its connection open without work
SHUTDOWN_GRACE = 5.0  # seconds a delivery on the wire may finish after cancellation
REDIS_RETRY_DELAY = 1.0  # seconds before a loop retries after a Redis error
PAUSE_CHECK_TTL = 1.0  # seconds the queue's paused flag is cached


class OutboxWorker:
    """Delivers the outbox. ``run()`` until cancelled."""

    def __init__(
        self,
        redis: Redis,
        accounts: AccountStore,
        settings: SettingsService,
        events: EventLog,
        mailstore: MailStore | None,
        gateways: GatewayService,
        *,
        node_id: str,
        max_held: int = MAX_HELD,
        lease_ms: int = LEASE_MS,
        retry_delay: float | None = None,
        lane_idle_close: float = LANE_IDLE_CLOSE,
        sender_factory: SenderFactory | None = None,
    ) -> None:
        self.redis = redis
        self.outbox = Outbox(redis)
        self.node_id = node_id
        self.token = f"{node_id}:{uuid.uuid4().hex[:8]}"
        self.max_held = max_held
        self.lease_ms = lease_ms
        self.lane_idle_close = lane_idle_close
        self.delivery = Delivery(
            self.outbox,
            accounts,
            settings,
            events,
            mailstore,
            gateways,
            token=self.token,
            sender_factory=sender_factory,
            retry_delay=retry_delay,
        )
        self._held: set[str] = set()
        self._lanes: dict[str, asyncio.Queue[str]] = {}
        self._wake = asyncio.Event()
        self._paused_at = 0.0
        self._paused = False
        self.sent = 0  # jobs run to a resting point by this worker (for tests and metrics)

    async def run(self) -> None:
        log.info("outbox worker started", node=self.node_id)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._listen(), name="outbox-listen")
                tg.create_task(self._reap(), name="outbox-reap")
                tg.create_task(self._renew(), name="outbox-renew")
                tg.create_task(self._dispatch(tg), name="outbox-dispatch")
        finally:
            await asyncio.shield(self._release_all())
            log.info("outbox worker stopped", node=self.node_id)

    # -- loops ------------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.OUTBOX_WAKE)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake.set()
            except (RedisError, OSError) as exc:
                log.warning("outbox wake-up channel failed", error=str(exc))
                await asyncio.sleep(REDIS_RETRY_DELAY)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _reap(self) -> None:
        while True:
            try:
                reaped = await self.outbox.reap()
                if reaped:
                    log.info("outbox leases expired", jobs=reaped)
                    self._wake.set()
            except (RedisError, OSError) as exc:
                log.warning("outbox reaper failed", error=str(exc))
            await asyncio.sleep(REAP_INTERVAL)

    async def _renew(self) -> None:
        interval = self.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                lost = await self.outbox.renew(self.token, sorted(self._held), self.lease_ms)
            except (RedisError, OSError) as exc:
                log.warning("outbox lease renewal failed", error=str(exc))
                continue
            lost &= self._held  # jobs finished meanwhile have no lease to renew
            if lost:
                log.warning("outbox leases lost", jobs=sorted(lost))
                self._held -= lost

    async def _is_paused(self) -> bool:
        if time.monotonic() - self._paused_at > PAUSE_CHECK_TTL:
            self._paused = bool(await self.redis.exists(keys.queue_paused("submit")))
            self._paused_at = time.monotonic()
        return self._paused

    async def _dispatch(self, tg: asyncio.TaskGroup) -> None:
        while True:
            self._wake.clear()
            claimed: list[str] = []
            try:
                free = self.max_held - len(self._held)
                if free > 0 and not await self._is_paused():
                    claimed = await self.outbox.claim(self.token, free, self.lease_ms)
                    for qid in claimed:
                        self._held.add(qid)
                    await self._route(claimed, tg)
                if claimed and len(claimed) == free:
                    continue
                next_due = await self.outbox.next_due()
            except (RedisError, OSError) as exc:
                log.warning("outbox dispatch failed", error=str(exc))
                await asyncio.sleep(REDIS_RETRY_DELAY)
                continue
            delay = POLL_INTERVAL
            if next_due is not None and len(self._held) < self.max_held:
                delay = min(POLL_INTERVAL, max(0.0, (next_due - now_ms()) / 1000))
            # (at capacity: wait for a finished job's wake-up instead of spinning)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def _route(self, queue_ids: list[str], tg: asyncio.TaskGroup) -> None:
        if not queue_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for qid in queue_ids:
                pipe.hmget(keys.outbox_job(qid), ["account", "gateway"])
            rows = await pipe.execute()
        for qid, (account, gateway) in zip(queue_ids, rows, strict=True):
            acct = account.decode() if isinstance(account, bytes) else str(account or "")
            gw = gateway.decode() if isinstance(gateway, bytes) else (gateway or "")
            key = f"gw:{gw}" if gw else f"acct:{acct}"
            lane = self._lanes.get(key)
            if lane is None:
                lane = asyncio.Queue()
                self._lanes[key] = lane
                tg.create_task(self._lane(key, lane), name=f"outbox-lane-{key}")
            lane.put_nowait(qid)

    async def _lane(self, key: str, queue: asyncio.Queue[str]) -> None:
        slot = SenderSlot()
        prefetched: tuple[str, asyncio.Task[tuple[Job, bytes] | None]] | None = None
        try:
            while True:
                if prefetched is not None:
                    qid, loading = prefetched
                    prefetched = None
                else:
                    try:
                        qid = await asyncio.wait_for(queue.get(), self.lane_idle_close)
                    except TimeoutError:
                        if queue.empty():
                            return
                        continue
                    loading = asyncio.create_task(self.delivery.load(qid))
                if not queue.empty():  # read the next job while this one is on the wire
                    nxt = queue.get_nowait()
                    prefetched = (nxt, asyncio.create_task(self.delivery.load(nxt)))
                await self._run_job(qid, slot, loading)
        finally:
            if self._lanes.get(key) is queue:
                del self._lanes[key]
            if prefetched is not None:
                prefetched[1].cancel()
            # jobs still waiting in this lane are released by _release_all
            if slot.tail is not None:
                await self._finish_tail(slot.tail)
            with contextlib.suppress(Exception):
                await asyncio.shield(slot.close())

    async def _finish_tail(self, tail: asyncio.Task[None]) -> None:
        """Let the lane's last post-send steps finish (bounded), even when stopping."""
        with contextlib.suppress(BaseException):
            await asyncio.shield(asyncio.wait([tail], timeout=SHUTDOWN_GRACE))
        if not tail.done():
            tail.cancel()

    async def _run_job(
        self, qid: str, slot: SenderSlot, loading: asyncio.Task[tuple[Job, bytes] | None]
    ) -> None:
        if qid not in self._held:
            loading.cancel()
            return  # lease lost while waiting
        task = asyncio.create_task(self._deliver(qid, slot, loading), name=f"outbox-job-{qid}")
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # stopping: let a delivery on the wire finish so its outcome is recorded
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, SHUTDOWN_GRACE)
            raise

    async def _deliver(
        self, qid: str, slot: SenderSlot, loading: asyncio.Task[tuple[Job, bytes] | None]
    ) -> None:
        post = None
        try:
            loaded = await loading
            if loaded is not None:
                post = await self.delivery.process(qid, slot, loaded)
        except (RedisError, OSError, MailgateError) as exc:
            log.warning("outbox job failed to run; its lease expires", queue_id=qid, error=str(exc))
            await slot.close()
        finally:
            if post is None:
                self._done(qid)
        if post is not None:
            # post-send steps run behind the connection, in order per lane
            slot.tail = asyncio.create_task(self._post(qid, post, slot.tail))

    async def _post(self, qid: str, post: PostSend, previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
            await post()
        except (RedisError, OSError, MailgateError) as exc:
            log.warning("post-send steps failed; its lease expires", queue_id=qid, error=str(exc))
        finally:
            self._done(qid)

    def _done(self, qid: str) -> None:
        self.sent += 1
        self._held.discard(qid)
        self._wake.set()

    async def _release_all(self) -> None:
        """Give every held job back to ``due`` (graceful stop)."""
        held, self._held = sorted(self._held), set()
        if not held:
            return
        with contextlib.suppress(RedisError, OSError):
            await self.outbox.release(self.token, held)
            log.info("outbox leases released", jobs=len(held))
