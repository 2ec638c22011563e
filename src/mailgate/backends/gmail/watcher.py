"""The Gmail watcher: what an account runner keeps open for a Gmail API account.

There is no connection to hold: ``open`` checks the token (``getProfile``) and, when the app
has a Pub/Sub app, sets up push — the app's topic and subscription (once per process), a
``users.watch`` on the topic (renewed a day before its 7-day expiry) and the route from the
account's address to the account for the pull loop (:mod:`.pubsub`). Pushed notifications wake
the runner through the control channel ("sync"); ``wait_for_changes`` itself only waits, so
without Pub/Sub (or when push setup failed) the account is polled every ``resyncDelay``.

``sync`` runs one :class:`~.sync.GmailSyncer` pass and then acknowledges the notifications that
were queued for the account before the pass began: only once their changes are committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mailgate.backends.gmail.client import GmailClient
from mailgate.backends.gmail.labels import LabelCache
from mailgate.backends.gmail.pubsub import PubSubPuller, PubSubSetup, attach_puller, detach_puller
from mailgate.backends.gmail.sync import GmailSyncer
from mailgate.domain.sync import SyncOptions
from mailgate.errors import ConnectError, MailgateError
from mailgate.store import keys
from mailgate.store.commit import Committer
from mailgate.store.redis import str_map, text

#: Renew ``users.watch`` when less than this is left of it (Gmail's watches last 7 days).
WATCH_RENEW_MARGIN_MS = 24 * 3600 * 1000

__all__ = ["GmailWatcher", "PubSubSetup", "SyncContext"]


@dataclass(frozen=True)
class SyncContext:
    """What a watcher needs from the process: Redis, the fenced committer, sync options."""

    redis: Redis
    committer: Committer
    load_options: Callable[[], Awaitable[SyncOptions]]


class GmailWatcher:
    """Implements :class:`mailgate.backends.base.Watcher` for Gmail API accounts."""

    def __init__(
        self,
        account: str,
        client: GmailClient,
        context: SyncContext,
        *,
        pubsub: PubSubSetup | None = None,
    ) -> None:
        self.account = account
        self.client = client
        self.context = context
        self.pubsub = pubsub
        self.labels = LabelCache(self._fetch_labels)
        self.email: str | None = None
        self._open = False
        self._puller: PubSubPuller | None = None
        self.log = structlog.get_logger("mailgate.gmail").bind(account=account, role="watcher")

    async def _fetch_labels(self) -> list[dict[str, Any]]:
        found = await self.client.request("labels.list", "GET", "labels")
        return list(found.get("labels") or [])

    @property
    def connections(self) -> int:
        return 1 if self._open else 0

    async def open(self) -> None:
        profile = await self.client.request("getProfile", "GET", "profile")
        self.email = str(profile.get("emailAddress") or "").lower()
        self._open = True
        if self.pubsub is not None:
            try:
                self._puller = await attach_puller(self.pubsub, self.context.redis)
                await self._ensure_watch(force=True)
            except (MailgateError, RedisError, OSError) as exc:
                self.log.warning("gmail push unavailable: polling", error=str(exc))
                if self._puller is not None:
                    await detach_puller(self._puller)
                    self._puller = None

    async def _ensure_watch(self, *, force: bool = False) -> None:
        if self.pubsub is None or self._puller is None or not self.email:
            return
        redis = self.context.redis
        state_key = keys.gmail_state(self.account)
        state = str_map(await redis.hgetall(state_key))
        expires = int(state.get("watchExpiration") or 0)
        now_ms = int(time.time() * 1000)
        if (
            not force
            and state.get("pubSubApp") == self.pubsub.app_id
            and expires - now_ms > WATCH_RENEW_MARGIN_MS
        ):
            return
        answer = await self.client.request(
            "watch",
            "POST",
            "watch",
            json_body={"topicName": self.pubsub.topic, "labelFilterBehavior": "include"},
        )
        await redis.hset(keys.gmail_pubsub_routes(self.pubsub.app_id), self.email, self.account)
        await redis.hset(
            state_key,
            mapping={
                "watchExpiration": str(answer.get("expiration") or 0),
                "pubSubApp": self.pubsub.app_id,
            },
        )

    async def wait_for_changes(self, timeout: float) -> list[str]:
        if not self._open:
            raise ConnectError("not connected")
        await asyncio.sleep(timeout)
        return []

    async def sync(self, hints: Sequence[str]) -> None:
        if not self._open:
            raise ConnectError("not connected")
        redis = self.context.redis
        acks_key = keys.gmail_pending_acks(self.account)
        pending = [text(a) for a in await redis.lrange(acks_key, 0, -1)]
        options = await self.context.load_options()
        syncer = GmailSyncer(
            self.account, self.client, self.labels, redis, self.context.committer, options
        )
        await syncer.run_pass()
        if pending and self._puller is not None:
            try:
                await self._puller.client.acknowledge(pending)
            except MailgateError as exc:
                self.log.info("pubsub acknowledge failed (will be redelivered)", error=str(exc))
            await redis.ltrim(acks_key, len(pending), -1)
        if self._puller is not None:
            await self._ensure_watch()

    async def _deleted(self) -> bool:
        """Whether the account itself is gone (not merely moving to another process)."""
        try:
            return not await self.context.redis.exists(keys.account(self.account))
        except (RedisError, OSError):
            return False

    async def _forget(self) -> None:
        """A deleted account: stop its Gmail watch and drop its Pub/Sub route (best effort)."""
        if self.pubsub is None:
            return
        redis = self.context.redis
        routes = keys.gmail_pubsub_routes(self.pubsub.app_id)
        try:
            if self.email and text(await redis.hget(routes, self.email) or b"") == self.account:
                await redis.hdel(routes, self.email)
        except (RedisError, OSError) as exc:
            self.log.info("pubsub route not dropped", error=str(exc))
        try:
            await self.client.request("stop", "POST", "stop", last_token_ok=True)
            self.log.info("gmail watch stopped: account deleted")
        except (MailgateError, OSError) as exc:
            self.log.info("gmail watch not stopped (it expires on its own)", error=str(exc))

    async def close(self) -> None:
        if self._open and await self._deleted():
            await self._forget()
        self._open = False
        puller, self._puller = self._puller, None
        if puller is not None:
            try:
                await detach_puller(puller)
            except Exception as exc:  # never raises: logged only
                self.log.info("pubsub detach failed", error=str(exc))
