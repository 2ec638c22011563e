"""Cloud Pub/Sub v1 over REST: topics, IAM policies, pull subscriptions.

Follows ``pubsub.v1.json`` (``projects.topics`` create/get/delete/list/publish/getIamPolicy/
setIamPolicy, ``projects.subscriptions`` create/get/delete/list/pull/acknowledge/
modifyAckDeadline) and the Pub/Sub guides "Pull subscriptions" and "Lease management"
(https://cloud.google.com/pubsub/docs/pull, /lease-management):

- a message published to a topic is copied to every subscription the topic has at that time;
- ``pull`` hands out up to ``maxMessages`` available messages, each with a fresh ``ackId``, and
  leases them for the subscription's ``ackDeadlineSeconds`` (10–600, default 10); a message not
  acknowledged before its deadline is delivered again; ``modifyAckDeadline`` extends the lease
  or (0 s) hands the message back at once;
- ``returnImmediately: false`` waits (up to ``pull_wait_seconds``) for a message to arrive;
- errors are the gRPC-transcoded JSON (``{"error": {"code", "message", "status"}}``).

Not modelled: push subscriptions, ordering keys, filters, dead-letter policies, exactly-once
delivery, snapshots and seek, schemas, message retention limits.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import TokenStore
from .errors import GoogleError
from .util import Clock, IdSource

PUBSUB_SCOPES = [
    "https://www.googleapis.com/auth/pubsub",
    "https://www.googleapis.com/auth/cloud-platform",
]
GMAIL_PUSH_ACCOUNT = "serviceAccount:gmail-api-push@system.gserviceaccount.com"
PUBLISHER_ROLES = {"roles/pubsub.publisher", "roles/pubsub.editor", "roles/pubsub.admin"}
PUBLISHER_ROLES |= {"roles/owner", "roles/editor"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")


def _error(code: int, message: str) -> GoogleError:
    return GoogleError(code, message, legacy_errors=False)


def _timestamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 1000:09d}Z"


@dataclass
class Topic:
    """A topic and its IAM policy."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    policy_version: int = 0

    def policy(self) -> dict[str, Any]:
        """The ``Policy`` resource."""
        etag = base64.b64encode(f"BwY{self.policy_version:05d}".encode()).decode()
        out: dict[str, Any] = {"etag": etag}
        if self.bindings:
            out["version"] = 1
            out["bindings"] = self.bindings
        return out

    def grants_publish_to(self, member: str) -> bool:
        """Whether ``member`` holds a role that may publish."""
        return any(
            b.get("role") in PUBLISHER_ROLES and member in b.get("members", [])
            for b in self.bindings
        )


@dataclass
class _Delivery:
    message: dict[str, Any]
    available_at: float
    ack_ids: set[str] = field(default_factory=set)
    attempts: int = 0


@dataclass
class Subscription:
    """A pull subscription with its outstanding (unacknowledged) messages."""

    name: str
    topic: str
    ack_deadline: int = 10
    labels: dict[str, str] = field(default_factory=dict)
    backlog: list[_Delivery] = field(default_factory=list)

    def resource(self) -> dict[str, Any]:
        """The ``Subscription`` resource."""
        return {
            "name": self.name,
            "topic": self.topic,
            "pushConfig": {},
            "ackDeadlineSeconds": self.ack_deadline,
            "messageRetentionDuration": "604800s",
            "expirationPolicy": {"ttl": "2678400s"},
            "state": "ACTIVE",
            **({"labels": self.labels} if self.labels else {}),
        }


class PubSub:
    """Topics and subscriptions of every project. Thread-safe."""

    def __init__(self, clock: Clock, ids: IdSource, pull_wait_seconds: float = 2.0) -> None:
        self._clock = clock
        self._ids = ids
        self.pull_wait_seconds = pull_wait_seconds
        self.topics: dict[str, Topic] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._message_ids = itertools.count(int(clock.now()) * 1000 + ids.gap())
        self._lock = threading.RLock()
        self.published: list[tuple[str, dict[str, Any]]] = []

    def topic(self, name: str) -> Topic:
        """A topic (404 if missing)."""
        with self._lock:
            try:
                return self.topics[name]
            except KeyError:
                raise _error(
                    404, f"Resource not found (resource={name.rsplit('/', 1)[-1]})."
                ) from None

    def subscription(self, name: str) -> Subscription:
        """A subscription (404 if missing)."""
        with self._lock:
            try:
                return self.subscriptions[name]
            except KeyError:
                raise _error(
                    404, f"Resource not found (resource={name.rsplit('/', 1)[-1]})."
                ) from None

    def create_topic(self, name: str, body: dict[str, Any]) -> Topic:
        """``topics.create``."""
        if not _NAME.match(name.rsplit("/", 1)[-1]) or name.rsplit("/", 1)[-1].startswith("goog"):
            raise _error(400, f"Invalid [topics] name: ({name})")
        with self._lock:
            if name in self.topics:
                raise _error(
                    409,
                    "Resource already exists in the project (resource={}).".format(
                        name.rsplit("/", 1)[-1]
                    ),
                )
            topic = Topic(name, dict(body.get("labels") or {}))
            self.topics[name] = topic
            return topic

    def create_subscription(self, name: str, body: dict[str, Any]) -> Subscription:
        """``subscriptions.create`` (pull only)."""
        if not _NAME.match(name.rsplit("/", 1)[-1]):
            raise _error(400, f"Invalid [subscriptions] name: ({name})")
        with self._lock:
            if name in self.subscriptions:
                raise _error(
                    409,
                    "Resource already exists in the project (resource={}).".format(
                        name.rsplit("/", 1)[-1]
                    ),
                )
            topic = str(body.get("topic", ""))
            self.topic(topic)
            deadline = int(body.get("ackDeadlineSeconds") or 10)
            if not 10 <= deadline <= 600:
                raise _error(400, "Invalid ack deadline given. Must be between 10 and 600 seconds.")
            sub = Subscription(name, topic, deadline, dict(body.get("labels") or {}))
            self.subscriptions[name] = sub
            return sub

    def publish(
        self, topic_name: str, data: bytes, attributes: dict[str, str] | None = None
    ) -> str:
        """Publish one message to a topic; returns its message id."""
        with self._lock:
            self.topic(topic_name)
            message_id = str(next(self._message_ids))
            message: dict[str, Any] = {
                "data": base64.b64encode(data).decode(),
                "messageId": message_id,
                "publishTime": _timestamp(self._clock.now()),
            }
            if attributes:
                message["attributes"] = dict(attributes)
            self.published.append((topic_name, message))
            for sub in self.subscriptions.values():
                if sub.topic == topic_name:
                    sub.backlog.append(_Delivery(dict(message), 0.0))
            return message_id

    def pull_now(self, name: str, max_messages: int) -> list[dict[str, Any]]:
        """Lease up to ``max_messages`` available messages."""
        with self._lock:
            sub = self.subscription(name)
            now = self._clock.now()
            out: list[dict[str, Any]] = []
            for delivery in sub.backlog:
                if len(out) >= max_messages:
                    break
                if delivery.available_at > now:
                    continue
                ack_id = f"{delivery.message['messageId']}-{self._ids.token(12)}"
                delivery.ack_ids.add(ack_id)
                delivery.attempts += 1
                delivery.available_at = now + sub.ack_deadline
                out.append({"ackId": ack_id, "message": delivery.message})
            return out

    def acknowledge(self, name: str, ack_ids: list[str]) -> None:
        """Drop the messages these ack ids were handed out for."""
        with self._lock:
            sub = self.subscription(name)
            wanted = set(ack_ids)
            sub.backlog = [d for d in sub.backlog if not d.ack_ids & wanted]

    def modify_ack_deadline(self, name: str, ack_ids: list[str], seconds: int) -> None:
        """Extend (or with 0 end) the lease of these messages."""
        if not 0 <= seconds <= 600:
            raise _error(400, "Invalid ack deadline given. Must be between 0 and 600 seconds.")
        with self._lock:
            sub = self.subscription(name)
            wanted = set(ack_ids)
            for delivery in sub.backlog:
                if delivery.ack_ids & wanted:
                    delivery.available_at = self._clock.now() + seconds


def routes(
    pubsub: PubSub,
    tokens: TokenStore,
    before: Callable[[], None],
    stopping: Callable[[], bool],
) -> list[Route]:
    """The Pub/Sub REST routes (``before`` runs first on each request: pending Gmail pushes)."""

    def authorize(request: Request) -> None:
        token = tokens.check_bearer(request.headers.get("authorization"))
        if not token.has_any(PUBSUB_SCOPES):
            raise GoogleError(
                403, "Request had insufficient authentication scopes.", legacy_errors=False
            )

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise _error(400, "Invalid JSON payload received.") from None
        if not isinstance(value, dict):
            raise _error(400, "Invalid JSON payload received.")
        return value

    async def handle(request: Request, kind: str) -> Response:
        try:
            authorize(request)
            before()
            project = request.path_params["project"]
            rest = request.path_params.get("rest")
            if rest is None:
                return list_resources(project, kind)
            resource, _, verb = rest.partition(":")
            name = f"projects/{project}/{kind}/{resource}"
            return await dispatch(request, kind, name, verb)
        except GoogleError as exc:
            return Response(
                exc.to_bytes(), exc.code, exc.headers, "application/json; charset=UTF-8"
            )

    def list_resources(project: str, kind: str) -> Response:
        prefix = f"projects/{project}/{kind}/"
        with pubsub._lock:
            if kind == "topics":
                items = [
                    {"name": t.name}
                    for n, t in sorted(pubsub.topics.items())
                    if n.startswith(prefix)
                ]
            else:
                items = [
                    s.resource()
                    for n, s in sorted(pubsub.subscriptions.items())
                    if n.startswith(prefix)
                ]
        return JSONResponse({kind: items} if items else {})

    async def dispatch(request: Request, kind: str, name: str, verb: str) -> Response:
        method = request.method
        if kind == "topics":
            if verb == "" and method == "PUT":
                topic = pubsub.create_topic(name, await body_of(request))
                return JSONResponse(
                    {"name": topic.name, **({"labels": topic.labels} if topic.labels else {})}
                )
            if verb == "" and method == "GET":
                topic = pubsub.topic(name)
                return JSONResponse({"name": topic.name})
            if verb == "" and method == "DELETE":
                with pubsub._lock:
                    pubsub.topic(name)
                    del pubsub.topics[name]
                    for sub in pubsub.subscriptions.values():
                        if sub.topic == name:
                            sub.topic = "_deleted-topic_"
                return JSONResponse({})
            if verb == "getIamPolicy":
                return JSONResponse(pubsub.topic(name).policy())
            if verb == "setIamPolicy" and method == "POST":
                policy = (await body_of(request)).get("policy") or {}
                with pubsub._lock:
                    topic = pubsub.topic(name)
                    topic.bindings = list(policy.get("bindings") or [])
                    topic.policy_version += 1
                    return JSONResponse(topic.policy())
            if verb == "publish" and method == "POST":
                messages = (await body_of(request)).get("messages") or []
                if not messages:
                    raise _error(400, "The request contains no messages.")
                ids = [
                    pubsub.publish(
                        name, base64.b64decode(m.get("data", "")), m.get("attributes") or None
                    )
                    for m in messages
                ]
                return JSONResponse({"messageIds": ids})
        else:
            if verb == "" and method == "PUT":
                return JSONResponse(
                    pubsub.create_subscription(name, await body_of(request)).resource()
                )
            if verb == "" and method == "GET":
                return JSONResponse(pubsub.subscription(name).resource())
            if verb == "" and method == "DELETE":
                with pubsub._lock:
                    pubsub.subscription(name)
                    del pubsub.subscriptions[name]
                return JSONResponse({})
            if verb == "pull" and method == "POST":
                body = await body_of(request)
                max_messages = int(body.get("maxMessages") or 0)
                if max_messages <= 0:
                    raise _error(400, "The value for max_messages must be > 0.")
                deadline = pubsub._clock.now() + (
                    0.0 if body.get("returnImmediately") else pubsub.pull_wait_seconds
                )
                while True:
                    received = pubsub.pull_now(name, max_messages)
                    if received or pubsub._clock.now() >= deadline or stopping():
                        break
                    await asyncio.sleep(0.02)
                    before()
                return JSONResponse({"receivedMessages": received} if received else {})
            if verb == "acknowledge" and method == "POST":
                pubsub.acknowledge(name, list((await body_of(request)).get("ackIds") or []))
                return JSONResponse({})
            if verb == "modifyAckDeadline" and method == "POST":
                body = await body_of(request)
                pubsub.modify_ack_deadline(
                    name, list(body.get("ackIds") or []), int(body.get("ackDeadlineSeconds", 0))
                )
                return JSONResponse({})
            if verb == "getIamPolicy":
                pubsub.subscription(name)
                return JSONResponse({"etag": "ACAB"})
        raise _error(404, f"Method not found: {method} {name}:{verb}")

    async def topics(request: Request) -> Response:
        return await handle(request, "topics")

    async def subscriptions(request: Request) -> Response:
        return await handle(request, "subscriptions")

    methods = ["GET", "PUT", "POST", "DELETE", "PATCH"]
    return [
        Route("/v1/projects/{project}/topics", topics, methods=["GET"]),
        Route("/v1/projects/{project}/topics/{rest}", topics, methods=methods),
        Route("/v1/projects/{project}/subscriptions", subscriptions, methods=["GET"]),
        Route("/v1/projects/{project}/subscriptions/{rest}", subscriptions, methods=methods),
    ]
