"""The Graph watcher: a change-notification subscription on the mailbox's messages, delta
queries for catch-up, and polling when no subscription can be had.

Subscription lifecycle (state kept in ``keys.graph_subscription``)::

    open ── serviceUrl set? ──no──► polling (a delta pass of every folder every resyncDelay)
              │yes
              ▼
    POST /subscriptions  (Graph validates notificationUrl: the route echoes validationToken)
              │ok                                  │refused
              ▼                                    ▼
    notifications ─► route checks clientState ─► hint list + "sync" control message ─► runner
                     ─► sync(): delta of the hinted folders only
    expiry - renew margin ─► PATCH expirationDateTime (404 → create again)
    lifecycle reauthorizationRequired ─► renew;  subscriptionRemoved ─► create again;
    missed ─► a full delta pass (catch-up)
    close ─► DELETE /subscriptions/{id} (with the last token: the account may be gone)

A full delta pass also runs every resyncDelay whatever happens (catch-up for anything a
notification missed); a renewal on the way does not start one.

The lifetime asked for is the ``lifetime`` constructor argument, else
:data:`SUBSCRIPTION_LIFETIME`, capped at Graph's 10,080 minutes. The process configures it with
``MAILGATE_GRAPH_SUBSCRIPTION_LIFETIME`` (seconds; ``Config.graph_subscription_lifetime``), which
reaches the watcher through ``BackendOptions`` (:func:`configured_lifetime`): the watcher reads no
environment. The renewal margin is :data:`RENEW_MARGIN` or a quarter of the lifetime, whichever
is shorter, so a short-lived subscription (tests, cautious deployments) is renewed before it
lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import structlog
from redis.asyncio import Redis

from mailgate.backends.graph.client import BatchPart, GraphClient
from mailgate.backends.graph.folders import Folders
from mailgate.backends.graph.sync import GraphSyncer, Hints
from mailgate.errors import (
    ApiError,
    AuthenticationError,
    BackendError,
    ConnectError,
    CursorExpired,
    Forbidden,
    MailgateError,
    NotFound,
)
from mailgate.store import keys
from mailgate.store.redis import str_map

#: Lifetime asked for a subscription (Graph allows up to 10,080 minutes for messages).
SUBSCRIPTION_LIFETIME = timedelta(days=2)
MAX_LIFETIME = timedelta(minutes=10080)
#: Renew when less than this (at most a quarter of the lifetime) is left.
RENEW_MARGIN = timedelta(hours=12)
#: Shortest wait between two renewal attempts.
MIN_RENEW_WAIT = 1.0
#: Hints taken from the list per pass.
MAX_HINTS = 1000
#: Path of the notification routes under serviceUrl (see api/routes/graph_notifications.py).
NOTIFY_PATH = "/v1/graph/notifications"
LIFECYCLE_PATH = "/v1/graph/lifecycle"

ServiceUrl = Callable[[], Awaitable[str | None]]
log = structlog.get_logger("mailgate.graph.watcher")


def notification_urls(service_url: str, account: str) -> tuple[str, str]:
    base = service_url.rstrip("/")
    tail = quote(account, safe="")
    return f"{base}{NOTIFY_PATH}/{tail}", f"{base}{LIFECYCLE_PATH}/{tail}"


def iso_utc(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def configured_lifetime(seconds: float | None) -> timedelta:
    """The subscription lifetime for a configured number of seconds (None or not positive:
    :data:`SUBSCRIPTION_LIFETIME`), capped at :data:`MAX_LIFETIME`."""
    if seconds is None or seconds <= 0:
        return SUBSCRIPTION_LIFETIME
    return min(timedelta(seconds=seconds), MAX_LIFETIME)


class GraphWatcher:
    """Implements :class:`mailgate.backends.base.Watcher` for Graph accounts."""

    def __init__(
        self,
        account: str,
        client: GraphClient,
        redis: Redis,
        syncer: Callable[[Folders], Awaitable[GraphSyncer]],
        service_url: ServiceUrl,
        *,
        lifetime: timedelta | None = None,
        renew_margin: timedelta | None = None,
    ) -> None:
        self.account = account
        self.lifetime = min(lifetime or SUBSCRIPTION_LIFETIME, MAX_LIFETIME)
        self.renew_margin = (
            renew_margin if renew_margin is not None else min(RENEW_MARGIN, self.lifetime / 4)
        )
        self.client = client
        self.redis = redis
        self.folders = Folders(client)
        self._syncer_factory = syncer
        self._service_url = service_url
        self._open = False
        self.subscription: dict[str, str] | None = None
        self.log = log.bind(account=account)

    @property
    def connections(self) -> int:
        return 1 if self._open else 0

    async def open(self) -> None:
        try:
            await self.client.get("/mailFolders/inbox", params={"$select": "id"})
        except (Forbidden, NotFound) as exc:
            raise AuthenticationError(str(exc), server_response=str(exc)) from exc
        except ApiError as exc:
            raise ConnectError(str(exc)) from exc
        self._open = True
        await self._subscribe()

    # -- subscription ----------------------------------------------------------------------------

    async def _subscribe(self) -> None:
        service_url = await self._service_url()
        if not service_url:
            return
        notify, lifecycle = notification_urls(service_url, self.account)
        state = secrets.token_hex(24)
        expires = datetime.now(UTC) + self.lifetime
        # the clientState is stored before the handshake: notifications may arrive at once
        await self.redis.hset(
            keys.graph_subscription(self.account), mapping={"clientState": state, "id": ""}
        )
        try:
            sub = await self.client.post(
                "/subscriptions",
                {
                    "changeType": "created,updated,deleted",
                    "notificationUrl": notify,
                    "lifecycleNotificationUrl": lifecycle,
                    "resource": f"{self.client.root.lstrip('/')}/messages",
                    "expirationDateTime": iso_utc(expires),
                    "clientState": state,
                },
                absolute=True,
            )
        except (ApiError, BackendError) as exc:
            self.log.warning("subscription refused: polling instead", error=str(exc))
            await self.redis.delete(keys.graph_subscription(self.account))
            self.subscription = None
            return
        self.subscription = {
            "id": str(sub.get("id") or ""),
            "clientState": state,
            "expires": str(sub.get("expirationDateTime") or iso_utc(expires)),
        }
        await self.redis.hset(
            keys.graph_subscription(self.account), mapping=dict(self.subscription.items())
        )
        self.log.info("subscribed to change notifications", subscription=self.subscription["id"])

    def _expires(self) -> datetime | None:
        if not self.subscription:
            return None
        try:
            return datetime.fromisoformat(self.subscription["expires"].replace("Z", "+00:00"))
        except ValueError:
            return None

    async def _renew(self) -> None:
        if not self.subscription:
            await self._subscribe()
            return
        expires = datetime.now(UTC) + self.lifetime
        try:
            renewed = await self.client.patch(
                f"/subscriptions/{self.subscription['id']}",
                {"expirationDateTime": iso_utc(expires)},
                absolute=True,
            )
        except NotFound:
            self.subscription = None
            await self._subscribe()
            return
        # Graph's answer is the expiry it granted
        self.subscription["expires"] = str(renewed.get("expirationDateTime") or iso_utc(expires))
        self.log.info("subscription renewed", subscription=self.subscription["id"])
        await self.redis.hset(
            keys.graph_subscription(self.account), "expires", self.subscription["expires"]
        )

    async def _maybe_renew(self) -> None:
        expires = self._expires()
        if expires is not None and expires - datetime.now(UTC) < self.renew_margin:
            await self._renew()

    # -- waiting and syncing ---------------------------------------------------------------------

    async def wait_for_changes(self, timeout: float) -> list[str]:
        """Notifications reach the runner through the control channel (a "sync" request), so
        this only waits out the resync delay, renewing the subscription on the way (a renewal
        does not end the wait: only the resync delay asks for a full pass)."""
        if not self._open:
            raise ConnectError("not connected")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self._maybe_renew()
            if await self.redis.llen(keys.graph_hints(self.account)):
                return ["*"]
            left = deadline - loop.time()
            if left <= 0:
                return []
            expires = self._expires()
            if expires is not None:
                until_renew = (expires - self.renew_margin - datetime.now(UTC)).total_seconds()
                left = min(left, max(MIN_RENEW_WAIT, until_renew))
            await asyncio.sleep(left)

    async def _take_hints(self) -> list[dict[str, Any]]:
        key = keys.graph_hints(self.account)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, MAX_HINTS - 1)
            pipe.ltrim(key, MAX_HINTS, -1)
            raw, _ = await pipe.execute()
        out = []
        for item in raw or []:
            with contextlib.suppress(ValueError):
                value = json.loads(item)
                if isinstance(value, dict):
                    out.append(value)
        return out

    async def _hinted_folders(self, hints: list[dict[str, Any]]) -> Hints | None:
        """The folders the notifications concern; None asks for a full pass."""
        ids_changed: list[str] = []
        ids_deleted: list[str] = []
        for hint in hints:
            event = hint.get("lifecycleEvent")
            if event == "reauthorizationRequired":
                await self._renew()
                return None
            if event == "subscriptionRemoved":
                self.subscription = None
                await self._subscribe()
                return None
            if event == "missed" or event:
                return None
            mid = str(hint.get("id") or "")
            if not mid:
                return None
            (ids_deleted if hint.get("changeType") == "deleted" else ids_changed).append(mid)
        out = Hints(full=False)
        syncer = await self._syncer_factory(self.folders)
        if ids_deleted:
            out.folders |= await syncer.folders_of_ids(ids_deleted)
        if ids_changed:
            unique = list(dict.fromkeys(ids_changed))
            results = await self.client.batch(
                [BatchPart("GET", f"/messages/{m}?$select=parentFolderId") for m in unique]
            )
            for mid, res in zip(unique, results, strict=True):
                if res.ok and isinstance(res.body, dict):
                    out.folders.add(str(res.body.get("parentFolderId") or ""))
                else:
                    ids_deleted.append(mid)  # gone again already: look where it was
            if ids_deleted:
                out.folders |= await syncer.folders_of_ids(ids_deleted)
        return out

    async def sync(self, hints: Sequence[str]) -> None:
        if not self._open:
            raise ConnectError("not connected")
        notes = await self._take_hints()
        plan: Hints | None = Hints()
        if notes:
            plan = await self._hinted_folders(notes)
        syncer = await self._syncer_factory(self.folders)
        try:
            await syncer.run_pass(plan)
        except CursorExpired:  # pragma: no cover - handled per folder; kept as a safety net
            await syncer.run_pass(Hints())

    async def close(self) -> None:
        """Remove the subscription (best effort, with the last token) and stop."""
        was_open, self._open = self._open, False
        sub, self.subscription = self.subscription, None
        if not was_open or not sub or not sub.get("id"):
            return
        with contextlib.suppress(MailgateError, OSError, RuntimeError):
            token = self.client.last_token
            await asyncio.wait_for(
                self.client.request(
                    "DELETE", f"/subscriptions/{sub['id']}", absolute=True, token=token
                ),
                10.0,
            )
        with contextlib.suppress(Exception):
            stored = str_map(await self.redis.hgetall(keys.graph_subscription(self.account)))
            if stored.get("id") == sub["id"]:
                await self.redis.delete(keys.graph_subscription(self.account))
