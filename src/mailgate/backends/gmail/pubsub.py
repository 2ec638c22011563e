"""Cloud Pub/Sub for Gmail push: topic setup, one pull loop per app and process, acks.

Gmail publishes ``{"emailAddress", "historyId"}`` to a topic after ``users.watch``; mailgate
reads a pull subscription of that topic. A Pub/Sub app (``baseScopes: "pubsub"``, a service
account key) names the project, topic and subscription; mailgate creates what is missing and
grants Gmail's publisher account on the topic.

Flow of one notification (nothing is acknowledged before the changes it announced are stored)::

    pull ──► address → account (Redis routes of the app) ──► ack id queued on the account
         ──► "sync" on the control channel ──► the account's runner (any process) syncs,
             commits, then acknowledges the ack ids it found queued before the pass
    unknown address ──► acknowledged at once (no account watches it any more)

A notification not acknowledged in time is delivered again: that costs one more sync pass,
never a duplicate event (the history cursor moved in the same commit as the events).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mailgate.backends.gmail.client import shared_http
from mailgate.errors import AuthenticationError, ConnectError, MailgateError
from mailgate.store import keys
from mailgate.store.control import publish_control
from mailgate.store.events import iso_now

GMAIL_PUBLISHER = "serviceAccount:gmail-api-push@system.gserviceaccount.com"
PUBLISHER_ROLE = "roles/pubsub.publisher"
DEFAULT_TOPIC = "mailgate-gmail"
DEFAULT_SUBSCRIPTION = "mailgate-gmail-sub"
#: Seconds Pub/Sub leases a pulled notification (covers one sync pass).
ACK_DEADLINE = 60
#: Notifications per pull.
PULL_MAX = 100
#: Longest wait of one pull (the server may answer earlier).
PULL_TIMEOUT = 60.0
#: Delays between failed pulls: first, cap.
PULL_RETRY = (1.0, 60.0)
#: Seconds before a token's expiry it is requested again.
TOKEN_MARGIN = 60.0

log = structlog.get_logger("mailgate.gmail.pubsub")


class AppTokenSource(Protocol):
    """Requests tokens for service apps (``TokenService.request_token``)."""

    async def request_token(self, app: Mapping[str, Any], oauth2: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True)
class PubSubSetup:
    """A Gmail app's Pub/Sub app record, its endpoint and where its tokens come from."""

    app: dict[str, Any]
    url: str
    tokens: AppTokenSource = field(compare=False)

    @property
    def app_id(self) -> str:
        return str(self.app.get("id"))

    @property
    def project(self) -> str:
        return str(self.app.get("googleProjectId") or "")

    @property
    def topic(self) -> str:
        name = str(self.app.get("googleTopicName") or DEFAULT_TOPIC)
        return name if name.startswith("projects/") else f"projects/{self.project}/topics/{name}"

    @property
    def subscription(self) -> str:
        name = str(self.app.get("googleSubscriptionName") or DEFAULT_SUBSCRIPTION)
        if name.startswith("projects/"):
            return name
        return f"projects/{self.project}/subscriptions/{name}"


class PubSubClient:
    """The few Pub/Sub REST calls mailgate makes, with the app's service-account token."""

    def __init__(self, setup: PubSubSetup) -> None:
        self.setup = setup
        self.base = setup.url.rstrip("/") + "/v1/"
        self._token: tuple[str, float] | None = None

    async def _access_token(self, force: bool = False) -> str:
        if not force and self._token is not None and self._token[1] > time.time():
            return self._token[0]
        user = self.setup.app.get("serviceClientEmail") or self.setup.app.get("serviceClient")
        answer = await self.setup.tokens.request_token(self.setup.app, {"auth": {"user": user}})
        lifetime = float(getattr(answer, "expires_in", 3600) or 3600)
        self._token = (str(answer.access_token), time.time() + lifetime - TOKEN_MARGIN)
        return self._token[0]

    async def call(
        self, verb: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> tuple[int, Any]:
        for attempt in range(2):
            token = await self._access_token(force=attempt > 0)
            try:
                resp = await shared_http().request(
                    verb,
                    self.base + path,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=timeout or httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                raise ConnectError(f"Pub/Sub unreachable: {exc}") from exc
            if resp.status_code == 401 and attempt == 0:
                continue
            try:
                doc = resp.json() if resp.content.strip() else {}
            except ValueError:
                doc = {}
            if resp.status_code == 401:
                raise AuthenticationError("Pub/Sub refused the service account token")
            return resp.status_code, doc
        raise AuthenticationError("Pub/Sub refused the service account token")

    async def ensure(self) -> None:
        """Create the topic (Gmail may publish) and the pull subscription when missing."""
        setup = self.setup
        status, _ = await self.call("GET", setup.topic)
        if status == 404:
            status, doc = await self.call("PUT", setup.topic, {})
            if status >= 400:
                raise ConnectError(f"Pub/Sub topic {setup.topic} cannot be created: {doc}")
        status, policy = await self.call("POST", f"{setup.topic}:getIamPolicy", {})
        if status < 400:
            bindings = list(policy.get("bindings") or [])
            if not any(
                b.get("role") == PUBLISHER_ROLE and GMAIL_PUBLISHER in (b.get("members") or [])
                for b in bindings
            ):
                bindings.append({"role": PUBLISHER_ROLE, "members": [GMAIL_PUBLISHER]})
                policy = {**policy, "bindings": bindings}
                await self.call("POST", f"{setup.topic}:setIamPolicy", {"policy": policy})
        status, _ = await self.call("GET", setup.subscription)
        if status == 404:
            body = {"topic": setup.topic, "ackDeadlineSeconds": ACK_DEADLINE}
            status, doc = await self.call("PUT", setup.subscription, body)
            if status >= 400 and status != 409:
                raise ConnectError(f"Pub/Sub subscription cannot be created: {doc}")

    async def pull(self) -> list[dict[str, Any]]:
        status, doc = await self.call(
            "POST",
            f"{self.setup.subscription}:pull",
            {"maxMessages": PULL_MAX, "returnImmediately": False},
            timeout=PULL_TIMEOUT + 10,
        )
        if status >= 400:
            raise ConnectError(f"Pub/Sub pull failed ({status}): {doc}")
        return list(doc.get("receivedMessages") or [])

    async def acknowledge(self, ack_ids: list[str]) -> None:
        if not ack_ids:
            return
        status, doc = await self.call(
            "POST", f"{self.setup.subscription}:acknowledge", {"ackIds": ack_ids}
        )
        if status >= 400:
            raise ConnectError(f"Pub/Sub acknowledge failed ({status}): {doc}")


def parse_notification(message: Mapping[str, Any]) -> tuple[str, int] | None:
    """(email address, history id) of a Gmail push message, or None."""
    try:
        data = json.loads(base64.b64decode(str(message.get("data") or "")))
        return str(data["emailAddress"]).lower(), int(data["historyId"])
    except (ValueError, KeyError, TypeError):
        return None


class PubSubPuller:
    """The pull loop of one Pub/Sub app in this process (shared by its accounts' watchers)."""

    def __init__(self, setup: PubSubSetup, redis: Redis) -> None:
        self.setup = setup
        self.client = PubSubClient(setup)
        self.redis = redis
        self.users = 0
        self.ready = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.log = log.bind(app=setup.app_id)

    async def status(self, **fields: Any) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.hset(
                keys.gmail_pubsub_status(self.setup.app_id),
                mapping={k: str(v) for k, v in fields.items()},
            )

    async def start(self) -> None:
        async with self._lock:
            if not self.ready:
                try:
                    await self.client.ensure()
                except MailgateError as exc:
                    await self.status(lastError=str(exc), lastErrorTime=iso_now())
                    raise
                self.ready = True
                await self.redis.sadd(keys.GMAIL_PUBSUB_APPS, self.setup.app_id)
                await self.status(
                    topic=self.setup.topic, subscription=self.setup.subscription, started=iso_now()
                )
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run(), name=f"pubsub-{self.setup.app_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        delay = PULL_RETRY[0]
        while True:
            try:
                received = await self.client.pull()
                delay = PULL_RETRY[0]
                await self.status(lastPull=iso_now())
                if received:
                    await self._dispatch(received)
            except asyncio.CancelledError:
                raise
            except (MailgateError, RedisError, OSError) as exc:
                self.log.warning("pubsub pull failed", error=str(exc), retry_in=delay)
                await self.status(lastError=str(exc), lastErrorTime=iso_now())
                await asyncio.sleep(delay)
                delay = min(PULL_RETRY[1], delay * 2)

    async def _dispatch(self, received: list[dict[str, Any]]) -> None:
        routes = keys.gmail_pubsub_routes(self.setup.app_id)
        stray: list[str] = []
        for item in received:
            ack_id = str(item.get("ackId") or "")
            parsed = parse_notification(item.get("message") or {})
            account = await self.redis.hget(routes, parsed[0]) if parsed else None
            if account is None:
                stray.append(ack_id)
                continue
            name = account.decode() if isinstance(account, bytes) else str(account)
            await self.redis.rpush(keys.gmail_pending_acks(name), ack_id)
            await publish_control(self.redis, "sync", name)
        await self.redis.hincrby(
            keys.gmail_pubsub_status(self.setup.app_id), "received", len(received)
        )
        if stray:
            await self.client.acknowledge(stray)


_pullers: dict[str, PubSubPuller] = {}


async def attach_puller(setup: PubSubSetup, redis: Redis) -> PubSubPuller:
    """The process's puller of ``setup``'s app, started (one more user)."""
    puller = _pullers.get(setup.app_id)
    if puller is None or puller.setup != setup:
        if puller is not None:
            await puller.stop()
        puller = _pullers[setup.app_id] = PubSubPuller(setup, redis)
    await puller.start()
    puller.users += 1
    return puller


async def detach_puller(puller: PubSubPuller) -> None:
    """One user less; the last one stops the pull loop."""
    puller.users = max(0, puller.users - 1)
    if puller.users == 0:
        await puller.stop()
        if _pullers.get(puller.setup.app_id) is puller:
            del _pullers[puller.setup.app_id]


async def puller_status(redis: Redis) -> dict[str, dict[str, Any]]:
    """Pub/Sub app id -> its topic, subscription and pull health (for ``/v1/pubsub/status``)."""
    apps: dict[str, Any] = {}
    for raw_id in sorted(await redis.smembers(keys.GMAIL_PUBSUB_APPS)):
        app_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        fields = {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in (await redis.hgetall(keys.gmail_pubsub_status(app_id))).items()
        }
        entry: dict[str, Any] = {
            "topic": fields.get("topic"),
            "subscription": fields.get("subscription"),
            "started": fields.get("started"),
            "lastPull": fields.get("lastPull"),
            "received": int(fields.get("received") or 0),
            "accounts": int(await redis.hlen(keys.gmail_pubsub_routes(app_id))),
            "lastError": None,
        }
        if fields.get("lastError"):
            entry["lastError"] = {
                "message": fields["lastError"],
                "time": fields.get("lastErrorTime"),
            }
        apps[app_id] = entry
    return apps
