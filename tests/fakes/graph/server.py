"""The fake Graph server: routing, auth, throttling, ``$batch``, the identity endpoints, the
background uvicorn thread, and the plain-Python helpers tests drive it with.

References (Graph v1.0):
- throttling: https://learn.microsoft.com/en-us/graph/throttling and
  https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits (at most 4
  concurrent requests per app per mailbox; 429 ``ApplicationThrottled`` "MailboxConcurrency"
  with ``Retry-After``)
- batching: https://learn.microsoft.com/en-us/graph/json-batching (at most 20 requests,
  ``dependsOn``, a failed dependency answers 424, bodies of non-JSON answers are base64)
- users: https://learn.microsoft.com/en-us/graph/api/user-get?view=graph-rest-1.0 (``/me`` is
  for delegated tokens only; an unknown user is 404 ``ErrorInvalidUser``)

Threads: the app runs on its own event loop in a daemon thread; helpers run on the test's
thread. One ``threading.RLock`` guards all state; handlers hold it only while they touch state
(never across an await).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.graph import folders, messages, subscriptions
from tests.fakes.graph.context import Ctx, Resp
from tests.fakes.graph.delta import DeltaState
from tests.fakes.graph.errors import GraphError, access_denied, bad_request, error_bytes
from tests.fakes.graph.extended import LAST_VERB, LAST_VERB_TIME
from tests.fakes.graph.identity import DEFAULT_USER_SCOPES, App, Identity, Token, TokenError
from tests.fakes.graph.model import Mailbox, Message, now_iso

MAILBOX_CONCURRENCY = 4
BATCH_LIMIT = 20
_FUNC_SEG = re.compile(r"^([\w.$]+)\('([^']*)'\)$")
_LITERALS = {
    "me",
    "users",
    "mailFolders",
    "childFolders",
    "messages",
    "attachments",
    "$value",
    "$count",
    "move",
    "copy",
    "delta",
    "delta()",
    "createReply",
    "createReplyAll",
    "createForward",
    "reply",
    "replyAll",
    "forward",
    "send",
    "sendMail",
    "permanentDelete",
    "subscriptions",
    "reauthorize",
}


@dataclass
class OutboundMail:
    """A message that left a mailbox through send/sendMail."""

    sender: str
    recipients: list[str]
    raw: bytes


@dataclass
class MailboxStats:
    """Per-mailbox counters readable by tests."""

    requests: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    in_flight: int = 0
    max_concurrency: int = 0


@dataclass
class _Failure:
    status: int
    retry_after: int
    upn: str | None


def _split(path: str) -> list[str]:
    """Path segments, with ``name('key')`` split into ``name``, ``key``."""
    out: list[str] = []
    for seg in path.strip("/").split("/"):
        m = _FUNC_SEG.match(seg)
        if m and not m.group(1).startswith("microsoft.graph."):
            out += [m.group(1), m.group(2)]
        elif seg:
            out.append(seg)
    return out


class FakeGraph:
    """Graph v1.0 mail + identity endpoints on 127.0.0.1. See the package docstring for the API."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.identity = Identity()
        self.mailboxes: dict[str, Mailbox] = {}
        self._names: dict[str, str] = {}
        self.grants: set[tuple[str, str]] = set()
        self.subscriptions: dict[str, subscriptions.Subscription] = {}
        self.delta_states: dict[str, DeltaState] = {}
        self.outbound: list[OutboundMail] = []
        self.errors: list[str] = []  # tracebacks of unexpected handler errors
        self.latency = 0.0
        self.concurrency_limit = MAILBOX_CONCURRENCY
        self.authorize_user: str | None = None
        self._notifications: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._stats: dict[str, MailboxStats] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, dict[str, Any], str]] | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.app = Starlette(
            routes=[
                Route("/{tenant}/oauth2/v2.0/token", self._token_endpoint, methods=["POST"]),
                Route("/{tenant}/oauth2/v2.0/authorize", self._authorize_endpoint, methods=["GET"]),
                Route(
                    "/v1.0/{path:path}",
                    self._graph_endpoint,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                ),
            ],
            lifespan=self._lifespan,
        )

    # ================================ helpers for tests ================================

    def add_user(
        self,
        upn: str,
        *,
        scopes: set[str] | frozenset[str] = DEFAULT_USER_SCOPES,
        display_name: str | None = None,
        client_id: str = "mailgate-tests",
    ) -> str:
        """Create a user with a mailbox (the well-known folders); return a delegated token."""
        with self.lock:
            mb = Mailbox(
                user_id=_uuid(),
                upn=upn,
                mail=upn,
                display_name=display_name or upn.split("@", maxsplit=1)[0].title(),
                scopes=set(scopes),
            )
            self.mailboxes[mb.user_id] = mb
            self._names[upn.lower()] = mb.user_id
            self._stats[mb.user_id] = MailboxStats()
            if self.authorize_user is None:
                self.authorize_user = upn
            return self.identity.issue(client_id, mb.user_id, frozenset(scopes)).value

    def user_token(
        self, upn: str, scopes: set[str] | None = None, client_id: str = "mailgate-tests"
    ) -> str:
        """Another delegated token for ``upn`` (default: every scope the user consented)."""
        with self.lock:
            mb = self.resolve_user(upn)
            return self.identity.issue(
                client_id, mb.user_id, frozenset(scopes if scopes is not None else mb.scopes)
            ).value

    def user_id(self, upn: str) -> str:
        with self.lock:
            return self.resolve_user(upn).user_id

    def add_app(
        self,
        client_id: str,
        secret: str,
        roles: set[str] | frozenset[str] = frozenset({"Mail.ReadWrite", "Mail.Send"}),
    ) -> None:
        """Register an application (for the code flow and for client credentials)."""
        with self.lock:
            self.identity.apps[client_id] = App(client_id, secret, frozenset(roles))

    def expire_token(self, token: str) -> None:
        """Make an access token expired (the next use answers 401)."""
        with self.lock:
            self.identity.tokens[token].expires_at = time.time() - 1

    def grant_access(self, user: str, mailbox: str) -> None:
        """Let ``user``'s delegated tokens reach ``mailbox`` (a shared mailbox / delegate)."""
        with self.lock:
            self.grants.add((self.resolve_user(user).user_id, self.resolve_user(mailbox).user_id))

    def create_folder(self, upn: str, name: str, parent: str = "msgfolderroot") -> str:
        """Create a folder without a request; returns its id."""
        from tests.fakes.graph.model import Folder, new_id

        with self.lock:
            mb = self.resolve_user(upn)
            f = Folder(new_id("AAMkAGFld"), name, mb.folder(parent).id)
            mb.folders[f.id] = f
            return f.id

    def folder_id(self, upn: str, ref: str) -> str:
        """The id of a folder given by id or well-known name."""
        with self.lock:
            return self.resolve_user(upn).folder(ref).id

    def deliver(
        self,
        upn: str,
        raw_mime: bytes,
        folder: str = "inbox",
        *,
        received: str | None = None,
        is_read: bool = False,
    ) -> str:
        """New mail arrives in ``folder``; returns the message's immutable id (see ``rest_id``)."""
        with self.lock:
            mb = self.resolve_user(upn)
            m = mb.from_mime(raw_mime, mb.folder(folder).id, received=received, is_read=is_read)
            self.emit(mb, "created", m)
            return m.imm_id

    def rest_id(self, upn: str, message_id: str) -> str:
        """The current REST id of a message given by either kind of id."""
        with self.lock:
            return self.resolve_user(upn).message(message_id).rest_id

    def message(self, upn: str, message_id: str) -> Message:
        """The stored message (read-only use, please)."""
        with self.lock:
            return self.resolve_user(upn).message(message_id)

    def modify_as_other_client(
        self,
        upn: str,
        message_id: str,
        *,
        is_read: bool | None = None,
        flag_status: str | None = None,
        categories: list[str] | None = None,
        last_verb: int | None = None,
        move_to: str | None = None,
        delete: bool = False,
    ) -> str | None:
        """Change a message as Outlook on another device would (``last_verb``: a reply 102,
        reply all 103 or forward 104 sent there); returns its new REST id (None once deleted).
        Notifications and the delta log see the change."""
        with self.lock:
            mb = self.resolve_user(upn)
            m = mb.message(message_id)
            if delete:
                self.emit(mb, "deleted", m)
                mb.remove(m)
                return None
            changed = (is_read, flag_status, categories, last_verb)
            if any(v is not None for v in changed):
                if last_verb is not None:
                    m.ext[LAST_VERB] = str(last_verb)
                    m.ext[LAST_VERB_TIME] = now_iso()
                if is_read is not None:
                    m.is_read = is_read
                if flag_status is not None:
                    m.flag = {"flagStatus": flag_status}
                if categories is not None:
                    m.categories = list(categories)
                mb.touch(m)
                self.emit(mb, "updated", m)
            if move_to is not None:
                dest = mb.folder(move_to)
                if dest.id != m.folder_id:
                    self.emit(mb, "deleted", m)
                    mb.move(m, dest.id)
                    self.emit(mb, "created", m)
            return m.rest_id

    def expire_delta_tokens(self, upn: str) -> None:
        """Every delta/skip token of ``upn`` becomes invalid (the next use answers 410)."""
        with self.lock:
            self.resolve_user(upn).delta_generation += 1

    def trigger_lifecycle(self, subscription_id: str, event: str) -> None:
        """Send a lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``,
        ``missed``) to the subscription's lifecycleNotificationUrl; ``subscriptionRemoved``
        also deletes the subscription."""
        if event not in {"reauthorizationRequired", "subscriptionRemoved", "missed"}:
            raise ValueError(f"unknown lifecycle event {event!r}")
        with self.lock:
            sub = self.subscriptions[subscription_id]
            if not sub.lifecycle_url:
                raise ValueError("the subscription has no lifecycleNotificationUrl")
            body = subscriptions.lifecycle_body(self, sub, event)
            if event == "subscriptionRemoved":
                del self.subscriptions[subscription_id]
            self._enqueue(sub.lifecycle_url, body, "lifecycle")

    def fail_next(
        self, n: int, status: int = 429, retry_after: int = 1, *, upn: str | None = None
    ) -> None:
        """The next ``n`` Graph requests (to ``upn``'s mailbox, or any) fail with ``status``."""
        with self.lock:
            self._failures += [_Failure(status, retry_after, upn) for _ in range(n)]

    def set_latency(self, seconds: float) -> None:
        """Delay every Graph answer by ``seconds`` (the request holds its concurrency slot)."""
        self.latency = seconds

    def stats(self, upn: str) -> dict[str, Any]:
        """``{"requests", "routes": {"GET /messages/{id}": n}, "throttled", "in_flight",
        "max_concurrency"}`` for ``upn``'s mailbox."""
        with self.lock:
            s = self._stats[self.resolve_user(upn).user_id]
            return {
                "requests": s.requests,
                "routes": dict(s.routes),
                "throttled": s.throttled,
                "in_flight": s.in_flight,
                "max_concurrency": s.max_concurrency,
            }

    def reset_stats(self) -> None:
        with self.lock:
            for k in self._stats:
                self._stats[k] = MailboxStats()

    @property
    def notifications_sent(self) -> list[dict[str, Any]]:
        """``[{"url", "body", "status", "error", "kind"}]`` of every notification POSTed."""
        with self.lock:
            return list(self._notifications)

    def wait_notifications(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until ``count`` notifications were sent (or ``timeout``); return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = self.notifications_sent
            if len(sent) >= count:
                return sent
            time.sleep(0.02)
        return self.notifications_sent

    # ================================ internals ================================

    def resolve_user(self, ref: str) -> Mailbox:
        ref = unquote(ref)
        mb = self.mailboxes.get(ref) or self.mailboxes.get(self._names.get(ref.lower(), ""))
        if mb is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")
        return mb

    def check_mailbox_access(self, token: Token, mb: Mailbox, kind: str) -> None:
        if (
            not token.app_only
            and token.user_id != mb.user_id
            and (token.user_id, mb.user_id) not in self.grants
        ):
            raise access_denied()

    def emit(self, mb: Mailbox, change: str, m: Message) -> None:
        """Queue change notifications for ``m`` (call before the change takes its ids away)."""
        for url, body in subscriptions.notifications_for(self, mb, change, m):
            self._enqueue(url, body, "change")

    def dispatch_outbound(self, mb: Mailbox, raw: bytes, recipients: list[str]) -> None:
        """Record a sent message and deliver it to recipients that are users of this fake."""
        self.outbound.append(OutboundMail(mb.mail, recipients, raw))
        for rcpt in dict.fromkeys(r.lower() for r in recipients):
            uid = self._names.get(rcpt)
            if uid is not None:
                target = self.mailboxes[uid]
                m = target.from_mime(raw, target.well_known["inbox"])
                self.emit(target, "created", m)

    def _enqueue(self, url: str, body: dict[str, Any], kind: str) -> None:
        if self._loop is None or self._queue is None:
            return
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (url, body, kind))

    async def _notifier(self) -> None:
        assert self._queue is not None
        async with httpx.AsyncClient(timeout=10.0) as client:
            while True:
                url, body, kind = await self._queue.get()
                record: dict[str, Any] = {
                    "url": url,
                    "body": body,
                    "kind": kind,
                    "status": None,
                    "error": None,
                }
                try:
                    resp = await client.post(url, json=body)
                    record["status"] = resp.status_code
                except httpx.HTTPError as exc:
                    record["error"] = repr(exc)
                with self.lock:
                    self._notifications.append(record)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        task = asyncio.create_task(self._notifier())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- identity endpoints ----

    async def _token_endpoint(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        with self.lock:
            try:
                scopes = {uid: frozenset(mb.scopes) for uid, mb in self.mailboxes.items()}
                return JSONResponse(self.identity.exchange(form, scopes))
            except TokenError as exc:
                return JSONResponse(exc.body, status_code=exc.status)

    async def _authorize_endpoint(self, request: Request) -> Response:
        params = dict(request.query_params)
        with self.lock:
            try:
                upn = params.get("login_hint") or self.authorize_user
                mb = self.resolve_user(upn or "")
                code = self.identity.authorize(params, mb.user_id, frozenset(mb.scopes))
            except (TokenError, GraphError) as exc:
                body = exc.body if isinstance(exc, TokenError) else {"error": "invalid_request"}
                return JSONResponse(body, status_code=400)
        redirect = params.get("redirect_uri", "")
        out = {"code": code}
        if "state" in params:
            out["state"] = params["state"]
        sep = "&" if "?" in redirect else "?"
        return RedirectResponse(f"{redirect}{sep}{urlencode(out)}", status_code=302)

    # ---- Graph ----

    async def _graph_endpoint(self, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params)
        body = await request.body()
        resp = await self.handle(request.method, request.path_params["path"], query, headers, body)
        return Response(
            resp.payload(),
            status_code=resp.status,
            media_type=resp.content_type if resp.status != 204 else None,
            headers=resp.headers,
        )

    async def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        *,
        in_batch: bool = False,
    ) -> Resp:
        """One Graph request, start to end (also used for each part of a ``$batch``)."""
        crid = headers.get("client-request-id")
        try:
            if path.strip("/") == "$batch" and not in_batch:
                return await self._batch(headers, body)
            with self.lock:
                token = self.identity.authenticate(headers.get("authorization"))
            segs = _split(path)
            if segs and segs[0] == "subscriptions":
                return await self._subscriptions(token, method, segs[1:], headers, body)
            with self.lock:
                mb, rest = self._mailbox(token, segs)
                stats = self._stats[mb.user_id]
                stats.requests += 1
                stats.routes[
                    f"{method} /" + "/".join(s if s in _LITERALS else "{id}" for s in rest)
                ] += 1
                failure = next(
                    (f for f in self._failures if f.upn is None or self.resolve_user(f.upn) is mb),
                    None,
                )
                if failure is not None:
                    self._failures.remove(failure)
                    stats.throttled += failure.status == 429
                    raise _throttled(
                        failure.status,
                        failure.retry_after,
                        "Application is over its resource limit.",
                    )
                if stats.in_flight >= self.concurrency_limit:
                    stats.throttled += 1
                    raise _throttled(429, 1, "Application is over its MailboxConcurrency limit.")
                stats.in_flight += 1
                stats.max_concurrency = max(stats.max_concurrency, stats.in_flight)
            try:
                if self.latency:
                    await asyncio.sleep(self.latency)
                with self.lock:
                    ctx = Ctx(self, method, "/".join(segs), rest, query, headers, body, mb, token)
                    return self._route(ctx)
            finally:
                with self.lock:
                    stats.in_flight -= 1
        except GraphError as exc:
            return Resp(exc.status, error_bytes(exc, crid), headers=exc.headers)
        except Exception:  # a bug in the fake: answer 500 in Graph's shape, keep the traceback
            self.errors.append(traceback.format_exc())
            return Resp(
                500,
                error_bytes(
                    GraphError(
                        500, "InternalServerError", "Fake Graph failed; see FakeGraph.errors."
                    ),
                    crid,
                ),
            )

    def _mailbox(self, token: Token, segs: list[str]) -> tuple[Mailbox, list[str]]:
        if segs[:1] == ["me"]:
            if token.app_only:
                raise bad_request("/me request is only valid with delegated authentication flow.")
            return self.mailboxes[token.user_id or ""], segs[1:]
        if segs[:1] == ["users"] and len(segs) >= 2:
            mb = self.resolve_user(segs[1])
            self.check_mailbox_access(token, mb, "read")
            return mb, segs[2:]
        raise bad_request(f"Resource not found for the segment '{segs[0] if segs else ''}'.")

    def _route(self, ctx: Ctx) -> Resp:
        rest = ctx.segs
        if not rest:
            if ctx.method != "GET":
                raise folders.method_not_allowed()
            mb = ctx.mailbox
            return Resp(
                body={
                    "@odata.context": f"{ctx.base_url}/$metadata#users/$entity",
                    "id": mb.user_id,
                    "userPrincipalName": mb.upn,
                    "mail": mb.mail,
                    "displayName": mb.display_name,
                    "givenName": mb.display_name.split(" ")[0],
                    "surname": None,
                    "businessPhones": [],
                    "jobTitle": None,
                    "mobilePhone": None,
                    "officeLocation": None,
                    "preferredLanguage": "en-US",
                }
            )
        head = rest[0].removeprefix("microsoft.graph.")
        if head == "mailFolders":
            return folders.root_folders(ctx, rest[1:])
        if head == "messages":
            return messages.collection(ctx, rest[1:], None)
        if head == "sendMail" and ctx.method == "POST" and len(rest) == 1:
            return messages.send_mail(ctx)
        raise bad_request(f"Resource not found for the segment '{rest[0]}'.")

    async def _subscriptions(
        self, token: Token, method: str, segs: list[str], headers: dict[str, str], body: bytes
    ) -> Resp:
        data = json.loads(body) if body else {}
        if not segs and method == "POST":
            immutable = 'idtype="immutableid"' in headers.get("prefer", "").lower().replace(" ", "")
            return Resp(201, await subscriptions.create(self, token, data, immutable))
        with self.lock:
            status, out = subscriptions.route(self, token, method, segs, data)
        return Resp(status, out)

    async def _batch(self, headers: dict[str, str], body: bytes) -> Resp:
        """``POST /$batch``: run the parts in order; a part whose dependency failed gets 424."""
        try:
            requests = json.loads(body).get("requests")
        except (ValueError, AttributeError) as exc:
            raise bad_request("Invalid batch payload.") from exc
        if not isinstance(requests, list) or not requests:
            raise bad_request("Invalid batch payload: 'requests' is required.")
        if len(requests) > BATCH_LIMIT:
            raise bad_request(f"The number of batch requests can't exceed {BATCH_LIMIT}.")
        ids = [str(r.get("id")) for r in requests]
        if len(set(ids)) != len(ids):
            raise bad_request("Batch request ids must be unique.")
        status_by_id: dict[str, int] = {}
        responses = []
        for part in requests:
            pid = str(part.get("id"))
            deps = [str(d) for d in part.get("dependsOn") or []]
            if any(d not in ids for d in deps):
                raise bad_request(f"Request '{pid}' depends on an unknown request.")
            if any(status_by_id.get(d, 0) >= 400 for d in deps):
                status_by_id[pid] = 424
                err = GraphError(
                    424, "FailedDependency", "Request failed due to a failed dependency."
                )
                responses.append({"id": pid, "status": 424, "body": json.loads(error_bytes(err))})
                continue
            url = str(part.get("url") or "")
            split = urlsplit(url if url.startswith("/") else "/" + url)
            part_headers = {**{k.lower(): str(v) for k, v in (part.get("headers") or {}).items()}}
            if "authorization" in headers:
                part_headers["authorization"] = headers["authorization"]
            raw_body = part.get("body")
            if isinstance(raw_body, dict | list):
                payload = json.dumps(raw_body).encode()
                part_headers.setdefault("content-type", "application/json")
            elif isinstance(raw_body, str):
                payload = raw_body.encode()
            else:
                payload = b""
            path = split.path.removeprefix("/v1.0").lstrip("/")
            resp = await self.handle(
                str(part.get("method", "GET")).upper(),
                path,
                dict(parse_qsl(split.query)),
                part_headers,
                payload,
                in_batch=True,
            )
            status_by_id[pid] = resp.status
            out: dict[str, Any] = {
                "id": pid,
                "status": resp.status,
                "headers": {"Content-Type": resp.content_type, **resp.headers},
            }
            data = resp.payload()
            if data:
                out["body"] = (
                    json.loads(data)
                    if resp.content_type == "application/json"
                    else base64.b64encode(data).decode()
                )
            responses.append(out)
        return Resp(200, {"responses": responses})

    # ================================ lifecycle ================================

    def start(self) -> FakeGraph:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[sock])),
            name="fake-graph",
            daemon=True,
        )  # type: ignore[union-attr]
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake Graph did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _throttled(status: int, retry_after: int, message: str) -> GraphError:
    code = (
        "ApplicationThrottled"
        if status == 429
        else {503: "ServiceUnavailable", 504: "GatewayTimeout"}.get(
            status, "ErrorInternalServerError"
        )
    )
    return GraphError(status, code, message, headers={"Retry-After": str(retry_after)})


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def start_fake_graph() -> FakeGraph:
    """Start a fake Graph on 127.0.0.1 and a free port; ``.stop()`` (or ``with``) ends it."""
    return FakeGraph().start()


@contextlib.contextmanager
def running_fake_graph() -> Iterator[FakeGraph]:
    """``with running_fake_graph() as fake:`` — started and stopped around the block."""
    fake = start_fake_graph()
    try:
        yield fake
    finally:
        fake.stop()
