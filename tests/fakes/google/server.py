"""``FakeGoogle``: the fake's state, its test helpers, and the uvicorn thread serving it.

One ASGI app (Starlette) on 127.0.0.1 and a free port answers Gmail v1 (``gmail_api.py``),
the Gmail batch endpoint (``batch.py``), Cloud Pub/Sub v1 (``pubsub.py``) and the OAuth 2.0
endpoints (``auth.py``). All state sits behind one re-entrant lock, so the helpers below are
safe to call from the test thread while the server runs.

Push notifications follow "Push Notifications" (https://developers.google.com/workspace/gmail/api/guides/push):
after ``users.watch``, a mailbox change touching the watched labels (all, by default) schedules a
notification ``{"emailAddress", "historyId"}`` (JSON, base64 in ``message.data``) on the topic
``push_delay`` seconds later; further changes in that window are coalesced into the same
notification, which carries the mailbox's history id at publication. ``historyId`` is a JSON
number, as Gmail sends it (the guide's example shows a string; accept both). Watches expire
after 7 days of the fake's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from . import auth, batch, gmail_api, mime, pubsub
from .auth import TokenStore
from .mailbox import Mailbox, StoredMessage
from .pubsub import GMAIL_PUSH_ACCOUNT, PubSub
from .quota import Quota, UserStats
from .util import Clock, IdSource

MAIL_SCOPE = "https://mail.google.com/"
MODIFY_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
DEFAULT_SCOPES: tuple[str, ...] = (MAIL_SCOPE, "openid", "email")


@dataclass
class _CallHook:
    """A test action waiting for the ``remaining``-th next answered call of ``method``."""

    method: str
    user: str | None
    remaining: int
    action: Callable[[], object]


class FakeGoogle:
    """A fake of Gmail v1, Cloud Pub/Sub v1 and Google OAuth 2.0 for tests.

    Constructor options (all keyword):

    - ``quota_units_per_second`` (250, Gmail's per-user rate; ``None`` disables throttling),
      ``quota_burst_seconds`` (1.0: bucket size in seconds of budget), ``forbidden_every``
      (4: every n-th throttled request is a 403 ``userRateLimitExceeded`` instead of a 429);
    - ``latency`` (0.0 s added before each HTTP response, for benchmarks);
    - ``token_lifetime`` (3599 s), ``rotate_refresh_tokens`` (False);
    - ``push_delay`` (0.1 s coalescing window of watch notifications);
    - ``pull_wait_seconds`` (2.0: how long a ``returnImmediately: false`` pull waits);
    - ``history_retention`` (None: keep every record; n: keep the last n records);
    - ``require_push_grant`` (True: ``watch`` needs the topic to grant
      ``gmail-api-push@system.gserviceaccount.com`` a publisher role);
    - ``seed`` (0: ids and gaps are reproducible).
    """

    def __init__(
        self,
        *,
        quota_units_per_second: float | None = 250.0,
        quota_burst_seconds: float = 1.0,
        forbidden_every: int = 4,
        latency: float = 0.0,
        token_lifetime: int = 3599,
        rotate_refresh_tokens: bool = False,
        push_delay: float = 0.1,
        pull_wait_seconds: float = 2.0,
        history_retention: int | None = None,
        require_push_grant: bool = True,
        seed: int = 0,
    ) -> None:
        self.clock = Clock()
        self.ids = IdSource(seed)
        self._lock = threading.RLock()
        self.mailboxes: dict[str, Mailbox] = {}
        self.tokens = TokenStore(
            self.clock,
            self.ids,
            lambda address: address.lower() in self.mailboxes,
            token_lifetime=token_lifetime,
            rotate_refresh_tokens=rotate_refresh_tokens,
        )
        self.quota = Quota(self.clock, quota_units_per_second, quota_burst_seconds, forbidden_every)
        self.pubsub = PubSub(self.clock, self.ids, pull_wait_seconds)
        self.latency = latency
        self.push_delay = push_delay
        self.history_retention = history_retention
        self.require_push_grant = require_push_grant
        self._pending_push: dict[str, float] = {}
        self._outbox: dict[str, list[bytes]] = {}
        self._call_hooks: list[_CallHook] = []
        self._stopping = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = self._build_app()

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        """The token endpoint, for ``token_uri`` of google-auth credentials."""
        return f"{self.url}/token"

    def start(self) -> FakeGoogle:
        """Serve on 127.0.0.1 and a free port in a background thread; returns self."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.tokens.token_url = self.token_uri
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=3,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-google", daemon=True
        )
        self._stopping = False
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake Google did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGoogle:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def locked(self) -> threading.RLock:
        """The state lock (a context manager)."""
        return self._lock

    def _build_app(self) -> ASGIApp:
        inner_ref: list[ASGIApp] = []

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            async def flusher() -> None:
                while True:
                    await asyncio.sleep(0.02)
                    self.flush_pushes()

            task = asyncio.create_task(flusher())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        routes = (
            gmail_api.routes(self)
            + batch.routes(inner_ref)
            + pubsub.routes(self.pubsub, self.tokens, self.flush_pushes, lambda: self._stopping)
            + auth.routes(self.tokens)
        )
        inner = Starlette(routes=routes, lifespan=lifespan)
        inner_ref.append(inner)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and self.latency > 0:
                await asyncio.sleep(self.latency)
            await inner(scope, receive, send)

        return app

    # -- GmailHost -------------------------------------------------------------------------
    def mailbox_for(self, email_address: str) -> Mailbox | None:
        """The mailbox of an address, if it is a user of the fake."""
        with self._lock:
            return self.mailboxes.get(email_address.lower())

    def new_draft_id(self) -> str:
        """A fresh draft id."""
        return self.ids.draft_id()

    def after_send(self, mailbox: Mailbox, message: StoredMessage) -> None:
        """Record a sent message and deliver it to recipients who are users of the fake."""
        self._outbox.setdefault(mailbox.email, []).append(message.raw)
        parsed = message.parsed
        header_end = re.search(rb"\r?\n\r?\n", message.raw)
        head = message.raw[: header_end.start()] if header_end else message.raw
        rest = message.raw[header_end.start() :] if header_end else b""
        without_bcc = re.sub(rb"(?im)^bcc:.*(\r?\n[ \t].*)*(\r?\n|$)", b"", head) + rest
        for address in dict.fromkeys(mime.addresses(parsed, "To", "Cc", "Bcc")):
            target = self.mailboxes.get(address)
            if target is not None and target is not mailbox:
                target.add(without_bcc, ["INBOX", "UNREAD"])

    def after_call(self, email_address: str, method: str) -> None:
        """A Gmail call of a user was answered (called under the state lock): run due hooks."""
        due: list[_CallHook] = []
        for hook in self._call_hooks:
            if hook.method != method or hook.user not in (None, email_address.lower()):
                continue
            hook.remaining -= 1
            if hook.remaining == 0:
                due.append(hook)
        for hook in due:
            self._call_hooks.remove(hook)
            hook.action()

    def _on_change(self, mailbox: Mailbox, labels: set[str]) -> None:
        watch = mailbox.watch
        if watch is None or watch.expiration_ms < self.clock.now_ms():
            return
        if watch.label_ids:
            touched = bool(labels & set(watch.label_ids))
            if (watch.behavior == "exclude") == touched:
                return
        self._pending_push.setdefault(mailbox.email, self.clock.now() + self.push_delay)

    def flush_pushes(self, force: bool = False) -> int:
        """Publish due (or, with ``force``, all) pending watch notifications; how many."""
        published = 0
        with self._lock:
            now = self.clock.now()
            for address, due in list(self._pending_push.items()):
                if not force and due > now:
                    continue
                del self._pending_push[address]
                mailbox = self.mailboxes[address]
                if mailbox.watch is None or mailbox.watch.topic not in self.pubsub.topics:
                    continue
                data = json.dumps({"emailAddress": mailbox.email, "historyId": mailbox.history_id})
                self.pubsub.publish(mailbox.watch.topic, data.encode())
                published += 1
        return published

    # -- test helpers: users and tokens ----------------------------------------------------
    def add_user(self, email_address: str, scopes: Iterable[str] = DEFAULT_SCOPES) -> str:
        """Create a mailbox (if new) and return an access token for it with ``scopes``."""
        key = email_address.lower()
        with self._lock:
            if key not in self.mailboxes:
                self.mailboxes[key] = Mailbox(
                    key, self.ids, self.clock, self._on_change, self.history_retention
                )
                self.tokens.register_user(key)
        return self.issue_token(key, scopes)

    def issue_token(
        self, subject: str, scopes: Iterable[str] = DEFAULT_SCOPES, expires_in: int | None = None
    ) -> str:
        """An access token for any subject (user or service account) with ``scopes``."""
        return self.tokens.issue(subject.lower(), frozenset(scopes), lifetime=expires_in).token

    def issue_refresh_token(
        self,
        email_address: str,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        client_id: str | None = None,
    ) -> str:
        """A refresh token (of the default or given client) as after an offline consent."""
        grant = auth.Grant(
            email_address.lower(), frozenset(scopes), client_id or auth.DEFAULT_CLIENT_ID
        )
        return self.tokens.new_refresh(grant)

    def add_client(
        self, client_id: str, client_secret: str, redirect_uris: Iterable[str] = ()
    ) -> None:
        """Register an OAuth client (``fake-client-id.apps.googleusercontent.com`` exists)."""
        self.tokens.clients[client_id] = auth.Client(client_id, client_secret, list(redirect_uris))

    def add_service_account(
        self,
        client_email: str,
        public_key: rsa.RSAPublicKey | bytes | str,
        key_id: str | None = None,
        *,
        delegation: bool = True,
    ) -> None:
        """Register a service account public key for the JWT bearer grant."""
        self.tokens.add_service_account(client_email, public_key, key_id, delegation=delegation)

    def set_consent_user(self, email_address: str | None, *, deny: bool = False) -> None:
        """Who approves at ``/o/oauth2/v2/auth`` (``deny``: answer ``error=access_denied``)."""
        self.tokens.consent_user = email_address.lower() if email_address else None
        self.tokens.deny_consent = deny

    def expire_tokens(self, email_address: str | None = None, token: str | None = None) -> None:
        """Make access tokens (of a user, one token, or all) expired: the next call gets 401."""
        self.tokens.expire(email_address, token)

    def revoke(self, token: str) -> None:
        """Revoke a token and its grant, as the user removing the app's access would."""
        self.tokens.revoke(token)

    # -- test helpers: mail ----------------------------------------------------------------
    def mailbox(self, email_address: str) -> Mailbox:
        """The ``Mailbox`` of a user (for direct inspection)."""
        found = self.mailbox_for(email_address)
        if found is None:
            raise KeyError(email_address)
        return found

    def deliver(
        self,
        email_address: str,
        raw: bytes,
        labels: Iterable[str] = ("INBOX", "UNREAD"),
        *,
        internal_date_ms: int | None = None,
    ) -> str:
        """Mail arrives (threading, history, push): returns the new message id."""
        with self._lock:
            return self.mailbox(email_address).add(raw, labels, internal_date=internal_date_ms).id

    def modify_as_other_client(
        self,
        email_address: str,
        message_ids: str | Iterable[str],
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> None:
        """Change labels as another client (web UI, phone) would: history + push."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        with self._lock:
            self.mailbox(email_address).modify(ids, add, remove)

    def delete_as_other_client(self, email_address: str, message_ids: str | Iterable[str]) -> None:
        """Delete messages permanently as another client would."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        with self._lock:
            self.mailbox(email_address).delete(ids)

    def expire_history(self, email_address: str) -> None:
        """Drop the history: any earlier ``startHistoryId`` now answers 404."""
        with self._lock:
            self.mailbox(email_address).expire_history()

    def history_id(self, email_address: str) -> int:
        """The mailbox's current history id."""
        with self._lock:
            return self.mailbox(email_address).history_id

    def sent(self, email_address: str) -> list[bytes]:
        """Raw messages the user sent (messages.send, drafts.send), as Gmail stored them."""
        with self._lock:
            return list(self._outbox.get(email_address.lower(), []))

    def message_ids(self, email_address: str, label: str | None = None) -> list[str]:
        """Ids of the user's messages (with ``label``), newest first."""
        with self._lock:
            box = self.mailbox(email_address)
            return [
                m.id for m in box.search(None, [label] if label else [], include_spam_trash=True)
            ]

    def on_call(
        self,
        method: str,
        action: Callable[[], object],
        *,
        email_address: str | None = None,
        after: int = 1,
    ) -> None:
        """Run ``action`` once, when the ``after``-th next ``method`` call (``"messages.list"``,
        ``"history.list"``, ... as in :data:`UNITS`) of a user (or of anyone) has been answered.

        The action runs under the state lock after the answer was computed and before it is
        sent, so what it changes (``deliver``, ``modify_as_other_client`` ...) is not in that
        answer but is in every later one: mail that arrives between two pages of a listing.
        Test control only: it changes nothing in how Google answers. Calls that fail (quota,
        ``fail_next``, a 4xx) do not count.
        """
        if after < 1:
            raise ValueError("after must be at least 1")
        user = email_address.lower() if email_address else None
        with self._lock:
            self._call_hooks.append(_CallHook(method, user, after, action))

    def pending_call_hooks(self) -> int:
        """How many ``on_call`` actions have not run yet."""
        with self._lock:
            return len(self._call_hooks)

    # -- test helpers: quota, faults, time -------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 429, email_address: str | None = None) -> None:
        """The next ``n`` Gmail requests (of a user, or anyone) fail with ``status``.

        429 ``rateLimitExceeded`` and 503 carry ``Retry-After: 1``; 403 is
        ``userRateLimitExceeded``; 500 ``backendError``; 401 an invalid-credentials answer.
        """
        self.quota.fail_next(n, status, email_address)

    def set_latency(self, seconds: float) -> None:
        """Delay every HTTP response by ``seconds``."""
        self.latency = seconds

    def set_quota(self, units_per_second: float | None, burst_seconds: float | None = None) -> None:
        """Change the per-user budget (``None``: unlimited); buckets refill from now."""
        self.quota.units_per_second = units_per_second
        if burst_seconds is not None:
            self.quota.burst_seconds = burst_seconds
        self.quota._level.clear()

    def stats(self, email_address: str) -> UserStats:
        """Requests, quota units, throttled and failed counts of a user, also per method."""
        return self.quota.stats(email_address)

    def reset_stats(self) -> None:
        """Zero the counters (and quota buckets, and pending ``fail_next``)."""
        self.quota.reset()

    def advance_time(self, seconds: float) -> None:
        """Move the fake's clock (token expiry, ack deadlines, watch expiry, quota refill)."""
        self.clock.advance(seconds)

    # -- test helpers: Pub/Sub -------------------------------------------------------------
    def create_push_topic(
        self,
        project: str = "fake-project",
        topic: str = "gmail-push",
        subscription: str | None = "gmail-push-sub",
        *,
        grant: bool = True,
        ack_deadline: int = 10,
    ) -> tuple[str, str | None]:
        """Create a topic (granting Gmail's publisher account) and a pull subscription."""
        topic_name = f"projects/{project}/topics/{topic}"
        with self._lock:
            created = self.pubsub.create_topic(topic_name, {})
            if grant:
                created.bindings = [
                    {"role": "roles/pubsub.publisher", "members": [GMAIL_PUSH_ACCOUNT]}
                ]
            sub_name = None
            if subscription:
                sub_name = f"projects/{project}/subscriptions/{subscription}"
                self.pubsub.create_subscription(
                    sub_name, {"topic": topic_name, "ackDeadlineSeconds": ack_deadline}
                )
        return topic_name, sub_name

    def published(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Every message published (to ``topic``), with ``data`` decoded as JSON when it is."""
        import base64

        out = []
        with self._lock:
            for name, message in self.pubsub.published:
                if topic is None or topic == name:
                    data = base64.b64decode(message["data"])
                    with contextlib.suppress(ValueError):
                        data = json.loads(data)
                    out.append({"topic": name, **message, "json": data})
        return out


def start_fake_google(**options: Any) -> FakeGoogle:
    """Create and start a ``FakeGoogle`` (options: see the class)."""
    return FakeGoogle(**options).start()


@contextlib.contextmanager
def fake_google(**options: Any) -> Iterator[FakeGoogle]:
    """``with fake_google() as fake:`` — started, and stopped afterwards (for fixtures)."""
    fake = start_fake_google(**options)
    try:
        yield fake
    finally:
        fake.stop()
