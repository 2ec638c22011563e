"""The webhook worker: delivers every account's event log to its webhook URL, in order.

Task tree (one ``asyncio.TaskGroup`` owns everything)::

    WebhookWorker.run
    ├── _listen     pub/sub wake-ups from EventLog.append (a hint; polling covers lost ones)
    ├── _recover    at start and every RECOVERY_INTERVAL: re-schedule accounts whose stream
    │               is ahead of their cursor (an append whose schedule mark was lost)
    ├── _schedule   claims due accounts, at most ``concurrency`` served at once
    └── _serve(account) × n      lock ─► drain ─► unlock
        ├── _drain     reads events after the cursor, one attempt at a time, in order
        └── _keep_lock renews the lock; a lost lock stops the drain

Per event: skipped (webhooks off, filtered, no URL) → the cursor moves on; 2xx → the cursor
moves on; a failure → the attempt count is stored and the account is rescheduled at
``retry.delay(attempt)``; after ``max_attempts`` (or a permanent failure) the event is dropped
with a log line and the ``failed`` counter, and the next event goes.

Delivery is at-least-once with a stable id: the cursor moves only after a 2xx, so a crash
between the receiver's 2xx and the cursor write (one Redis round trip) re-sends the *same*
event id (``X-EE-Wh-Event-Id``); receivers deduplicate on it. A graceful stop (cancellation)
lets an attempt already on the wire finish, for up to SHUTDOWN_GRACE, so it is not re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import httpx
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mailgate.services.settings import SettingsService
from mailgate.services.webhooks import egress, payload, retry
from mailgate.services.webhooks.delivery import ATTEMPT_TIMEOUT, Deliverer, make_client
from mailgate.services.webhooks.queue import (
    CLAIM_MS,
    LOCK_TTL_MS,
    Event,
    HeadState,
    LockLost,
    WebhookQueue,
    now_ms,
)
from mailgate.store import keys
from mailgate.store.accounts import AccountStore

log = structlog.get_logger("mailgate.webhooks")

MAX_CONCURRENT_ACCOUNTS = 50  # accounts delivered at once by one worker process
READ_BATCH = 100  # events read from a stream per round trip
POLL_INTERVAL = 1.0  # seconds between schedule checks when no wake-up arrives
RECOVERY_INTERVAL = 60.0  # seconds between recovery scans
SETTINGS_TTL = 1.0  # seconds the webhook settings are cached
SHUTDOWN_GRACE = 5.0  # seconds an attempt on the wire may finish after cancellation
REDIS_RETRY_DELAY = 1.0  # seconds before a loop retries after a Redis error
LOCK_RENEW_EVERY = LOCK_TTL_MS / 3000  # seconds
LOCK_GIVE_UP_AFTER = LOCK_TTL_MS / 1000 - LOCK_RENEW_EVERY  # stop before the lock can expire


class _Backoff(Exception):
    """The head event failed and the account is rescheduled for a retry."""


class WebhookWorker:
    def __init__(
        self,
        redis: Redis,
        settings: SettingsService,
        accounts: AccountStore,
        *,
        node_id: str,
        http: httpx.AsyncClient | None = None,
        base_delay: float = retry.BASE_DELAY,
        max_attempts: int = retry.MAX_ATTEMPTS,
        concurrency: int = MAX_CONCURRENT_ACCOUNTS,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
        recovery_interval: float = RECOVERY_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
        resolver: egress.Resolver = egress.system_resolver,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.accounts = accounts
        self.node_id = node_id
        self.queue = WebhookQueue(redis)
        self.base_delay = base_delay
        self.max_attempts = max_attempts
        self.concurrency = max(1, concurrency)
        self.attempt_timeout = attempt_timeout
        self.recovery_interval = recovery_interval
        self.poll_interval = poll_interval
        self.resolver = resolver
        self._http = http
        self._deliverer: Deliverer | None = None
        self._active: set[str] = set()
        self._wake = asyncio.Event()
        self._config: tuple[float, payload.WebhookConfig] | None = None

    # --- public ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until cancelled; on cancellation in-flight attempts get SHUTDOWN_GRACE."""
        own_http = self._http is None
        http = self._http or make_client()
        self._deliverer = Deliverer(http, resolver=self.resolver, timeout=self.attempt_timeout)
        log.info("webhook worker started", node=self.node_id, concurrency=self.concurrency)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._listen(), name="webhooks-listen")
                tg.create_task(self._recover(), name="webhooks-recover")
                tg.create_task(self._schedule(tg), name="webhooks-schedule")
        finally:
            if own_http:
                with contextlib.suppress(Exception):
                    await asyncio.shield(http.aclose())
            log.info("webhook worker stopped", node=self.node_id)

    async def stats(self) -> dict[str, Any]:
        """The ``notify`` queue counters (``GET /v1/settings/queue/notify``)."""
        return await self.queue.stats()

    # --- loops ----------------------------------------------------------------------------------
    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.WEBHOOK_WAKE)
                self._wake.set()  # anything appended before the subscription
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is not None:
                        self._wake.set()
            except (RedisError, OSError) as exc:
                log.warning("webhook wake-up channel failed", error=str(exc))
                await asyncio.sleep(REDIS_RETRY_DELAY)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]

    async def _recover(self) -> None:
        while True:
            try:
                await self.recover_once()
            except (RedisError, OSError) as exc:
                log.warning("webhook recovery scan failed", error=str(exc))
            await asyncio.sleep(self.recovery_interval)

    async def recover_once(self) -> int:
        """Schedule every account whose stream is ahead of its cursor; one worker at a time."""
        ttl = max(1000, int(self.recovery_interval * 900))
        if not await self.redis.set(keys.WEBHOOK_RECOVERY_LOCK, self.node_id, nx=True, px=ttl):
            return 0
        found = start = 0
        page = 500
        while True:
            ids = await self.accounts.ids(start, start + page - 1)
            if not ids:
                break
            behind = await self.queue.behind(ids)
            added = await self.queue.mark_pending(behind)
            found += added
            start += page
        if found:
            log.info("webhook recovery scheduled accounts", accounts=found)
            self._wake.set()
        return found

    async def _schedule(self, tg: asyncio.TaskGroup) -> None:
        while True:
            _stop_if_cancelled()
            self._wake.clear()
            timeout = self.poll_interval
            free = self.concurrency - len(self._active)
            if free > 0:
                try:
                    due, first = await self.queue.claim_due(free, CLAIM_MS)
                except (RedisError, OSError) as exc:
                    log.warning("webhook schedule read failed", error=str(exc))
                    await asyncio.sleep(REDIS_RETRY_DELAY)
                    continue
                _stop_if_cancelled()
                for account in due:
                    if account in self._active:
                        continue  # still served here; its run reschedules it when done
                    self._active.add(account)
                    tg.create_task(self._serve(account), name=f"webhooks-{account}")
                if len(due) >= free:
                    timeout = 0 if len(self._active) < self.concurrency else self.poll_interval
                elif first is not None:
                    timeout = min(self.poll_interval, max(0.0, (first - now_ms()) / 1000))
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()

    # --- one account ----------------------------------------------------------------------------
    async def _serve(self, account: str) -> None:
        token = f"{self.node_id}:{uuid.uuid4().hex}"
        locked = False
        try:
            locked = await self.queue.acquire(account, token)
            if not locked:
                return  # another worker delivers it; it reschedules the account when done
            async with asyncio.TaskGroup() as tg:
                keeper = tg.create_task(self._keep_lock(account, token))
                try:
                    await self._drain(account, token)
                finally:
                    keeper.cancel()
        except* LockLost:
            log.warning("webhook lock lost; another worker continues", account=account)
        except* (RedisError, OSError) as group:
            log.warning(
                "webhook delivery interrupted by Redis",
                account=account,
                error=str(group.exceptions[0]),
            )
            with contextlib.suppress(RedisError, OSError):  # (a backoff: _release keeps it)
                await self.queue.backoff(account, now_ms() + int(REDIS_RETRY_DELAY * 1000))
        except* Exception as group:
            log.exception(
                "webhook delivery failed unexpectedly",
                account=account,
                exc_info=group.exceptions[0],
            )
            with contextlib.suppress(RedisError, OSError):  # (a backoff: _release keeps it)
                await self.queue.backoff(account, now_ms() + int(self.base_delay * 1000))
        finally:
            if locked:
                await self._release(account, token)
            self._active.discard(account)
            self._wake.set()

    async def _release(self, account: str, token: str) -> None:
        """Release the lock (also while being cancelled), then make the account due again at
        once if it is still scheduled under a claim: it was left half-drained, or an append
        came in after the last drain check and another worker's claim met our lock. A retry
        backoff time is kept."""
        with contextlib.suppress(TimeoutError, RedisError, OSError):
            async with asyncio.timeout(2.0):
                await asyncio.shield(self._release_now(account, token))

    async def _release_now(self, account: str, token: str) -> None:
        await self.queue.release(account, token)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zscore(keys.WEBHOOK_RETRY, account)
            pipe.zscore(keys.WEBHOOK_PENDING, account)
            in_retry, scheduled = await pipe.execute()
        if scheduled is None:
            return
        due = max(now_ms(), int(in_retry or 0))
        if due < int(scheduled):
            await self.queue.schedule(account, due, only_existing=True)

    async def _keep_lock(self, account: str, token: str) -> None:
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(LOCK_RENEW_EVERY)
            try:
                if not await self.queue.renew(account, token):
                    raise LockLost(account)
                renewed = time.monotonic()
            except (RedisError, OSError) as exc:
                if time.monotonic() - renewed > LOCK_GIVE_UP_AFTER:
                    raise LockLost(account) from exc

    async def _drain(self, account: str, token: str) -> None:
        record = await self.accounts.get(account)
        hooks = payload.AccountHooks(
            exists=record is not None,
            url=(record.webhooks or None) if record is not None else None,
            custom_headers=payload.header_pairs(record.webhooks_custom_headers) if record else (),
        )
        while True:
            head = await self.queue.head(account)
            cursor = head.cursor
            while True:
                events = await self.queue.read_after(account, cursor, READ_BATCH)
                if not events:
                    break
                cfg = await self._load_config()
                try:
                    cursor = await self._deliver_batch(account, token, events, head, cfg, hooks)
                except _Backoff:
                    return
                head = HeadState(cursor=cursor, attempt_id=None, attempts=0)
            if not await self.queue.drained(account, token):
                continue  # appended meanwhile
            await self.queue.unschedule(account)
            if await self.queue.drained(account, token):
                return
            await self.queue.schedule(account, now_ms() + CLAIM_MS)  # ours again: keep going

    async def _deliver_batch(
        self,
        account: str,
        token: str,
        events: list[Event],
        head: HeadState,
        cfg: payload.WebhookConfig,
        hooks: payload.AccountHooks,
    ) -> str:
        """Handle ``events`` in order; returns the new cursor. Raises _Backoff on a retry."""
        skipped: list[str] = []
        for event in events:
            url = self._target(event, cfg, hooks)
            if url is None:
                skipped.append(event.id)
                continue
            if skipped:
                await self.queue.advance(account, token, skipped[-1], len(skipped), "skipped")
                skipped.clear()
            attempt = head.attempts + 1 if head.attempt_id == event.id else 1
            await self._attempt(account, token, event, url, attempt, cfg, hooks)
        if skipped:
            await self.queue.advance(account, token, skipped[-1], len(skipped), "skipped")
        return events[-1].id

    @staticmethod
    def _target(
        event: Event, cfg: payload.WebhookConfig, hooks: payload.AccountHooks
    ) -> str | None:
        entry = event.entry
        name = str(entry.get("event") or "")
        if not hooks.exists and name != "accountDeleted":
            return None  # as EmailEngine: events of deleted accounts, other than the deletion
        if not payload.wanted(
            name, entry.get("path"), entry.get("specialUse"), entry.get("data"), cfg
        ):
            return None
        return payload.target_url(cfg, hooks)

    async def _attempt(
        self,
        account: str,
        token: str,
        event: Event,
        url: str,
        attempt: int,
        cfg: payload.WebhookConfig,
        hooks: payload.AccountHooks,
    ) -> None:
        """One attempt and its bookkeeping, shielded: a cancellation lets it finish (bounded)."""
        job = asyncio.ensure_future(
            self._attempt_and_record(account, token, event, url, attempt, cfg, hooks)
        )
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            if not job.done():
                try:
                    async with asyncio.timeout(SHUTDOWN_GRACE):
                        await asyncio.shield(job)
                except Exception:  # grace over (TimeoutError), or the attempt failed
                    job.cancel()
                    with contextlib.suppress(BaseException):
                        await job
            raise

    async def _attempt_and_record(
        self,
        account: str,
        token: str,
        event: Event,
        url: str,
        attempt: int,
        cfg: payload.WebhookConfig,
        hooks: payload.AccountHooks,
    ) -> None:
        assert self._deliverer is not None
        body = payload.body(event.entry, cfg.service_url)
        request = payload.build_request(
            url,
            body,
            account_id=account,
            event_id=event.id,
            attempt=attempt,
            cfg=cfg,
            account=hooks,
        )
        result = await self._deliverer.post(
            request.url, body, request.headers, block_private=cfg.block_private
        )
        decision = retry.decide(
            ok=result.ok,
            attempt=attempt,
            permanent=result.permanent,
            max_attempts=self.max_attempts,
        )
        name = event.entry.get("event")
        if decision is retry.Decision.DONE:
            await self.queue.advance(account, token, event.id, 1, "completed")
            log.debug(
                "webhook delivered",
                account=account,
                webhook_event=name,
                id=event.id,
                attempt=attempt,
            )
            return
        if decision is retry.Decision.GIVE_UP:
            await self.queue.advance(account, token, event.id, 1, "failed")
            log.error(
                "webhook dropped",
                account=account,
                webhook_event=name,
                id=event.id,
                attempts=attempt,
                permanent=result.permanent,
                error=result.describe(),
                url=_redact(url),
            )
            return
        wait = retry.delay(attempt, self.base_delay)
        await self.queue.record_failure(account, token, event.id, attempt, result.describe())
        await self.queue.backoff(account, now_ms() + int(wait * 1000))
        log.warning(
            "webhook attempt failed",
            account=account,
            webhook_event=name,
            id=event.id,
            attempt=attempt,
            retry_in=wait,
            error=result.describe(),
            url=_redact(url),
        )
        raise _Backoff

    async def _load_config(self) -> payload.WebhookConfig:
        cached = self._config
        if cached is not None and time.monotonic() - cached[0] < SETTINGS_TTL:
            return cached[1]
        values = dict(
            zip(
                payload.SETTING_NAMES,
                await asyncio.gather(*(self.settings.get(n) for n in payload.SETTING_NAMES)),
                strict=True,
            )
        )
        cfg = payload.WebhookConfig.from_settings(values)
        self._config = (time.monotonic(), cfg)
        return cfg


def _redact(url: str) -> str:
    """The URL without user info or query string (they may hold credentials)."""
    try:
        target = egress.check_url(url)
    except egress.EgressRefused:
        return url.split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{target.scheme}://{target.host}:{target.port}{target.parts.path}"


def _stop_if_cancelled() -> None:
    """Raise CancelledError when the running task was asked to stop.

    A cancellation can be absorbed on the way: a Redis call interrupted by it may surface as a
    connection error, and Python 3.11's ``asyncio.timeout`` turns one that lands as the timeout
    expires into TimeoutError. The scheduler must still stop, or it adds tasks to a task group
    that is shutting down.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
