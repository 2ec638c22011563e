"""HTTP access to Microsoft Graph v1.0 for one mailbox: limits, retries, ``$batch``, streaming.

One :class:`GraphHttp` per process holds the pooled ``httpx.AsyncClient`` and one
:class:`MailboxLimiter` per mailbox (at most :data:`MAX_IN_FLIGHT` requests in flight, Outlook's
documented per-app-per-mailbox concurrency); every :class:`GraphClient` of that mailbox (the API
backend and the runner's watcher) shares it. Every request carries
``Prefer: IdType="ImmutableId"`` so message ids survive moves.

Failure rules (:func:`classify`, pure): 408, 429 and 5xx are transient and retried up to
:data:`MAX_ATTEMPTS` times, waiting ``Retry-After`` (capped at :data:`MAX_RETRY_AFTER`) or a
jittered exponential backoff; a 429 pauses the whole mailbox, so a storm is not made worse.
Every other 4xx is permanent. A 401 forces one token refresh and one retry.

Exceptions (foreign ones mapped here, ``raise ... from exc``)::

    httpx.TransportError / timeouts, transient statuses exhausted  → ConnectError
    401 after a refreshed token                                    → AuthenticationError
    400 → BadRequest   403 → Forbidden   404 → NotFound   409 → Conflict
    410 (expired delta/sync state)                                  → CursorExpired
    other 4xx                                                       → CommandError
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from mailgate.backends.oauth import TokenProvider
from mailgate.errors import (
    AuthenticationError,
    BadRequest,
    CommandError,
    Conflict,
    ConnectError,
    CursorExpired,
    Forbidden,
    MailgateError,
    NotFound,
)

#: Requests in flight per mailbox (Outlook allows 4 concurrent requests per app and mailbox).
MAX_IN_FLIGHT = 4
#: Attempts of one request facing transient failures.
MAX_ATTEMPTS = 6
#: Longest ``Retry-After`` honoured (seconds); longer waits surface as ConnectError.
MAX_RETRY_AFTER = 120.0
#: Backoff without Retry-After: base * 2**attempt (+ jitter), capped.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 16.0
#: Requests in one JSON batch (Graph's limit).
BATCH_LIMIT = 20
#: Bytes per chunk when streaming a body.
STREAM_CHUNK = 64 * 1024
#: Timeouts of every network phase (seconds).
TIMEOUTS = httpx.Timeout(connect=15.0, read=90.0, write=90.0, pool=60.0)
#: Connection pool of the process-wide client.
POOL_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)
PREFER_IMMUTABLE = 'IdType="ImmutableId"'
API_VERSION = "v1.0"

log = structlog.get_logger("mailgate.graph")


class Retry(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"


def classify(status: int) -> Retry:
    """4xx are permanent except 408 and 429; 5xx are transient."""
    if status in (408, 429) or status >= 500:
        return Retry.TRANSIENT
    return Retry.PERMANENT


def retry_after(headers: Mapping[str, str], attempt: int) -> float:
    """Seconds to wait before the next attempt: ``Retry-After`` when given, else backoff."""
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if raw is not None:
        with contextlib.suppress(ValueError):
            return float(max(0.0, min(float(raw), MAX_RETRY_AFTER)))
    backoff: float = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
    return backoff * (0.5 + random.random() / 2)


def graph_error_of(body: bytes | str | Mapping[str, Any] | None) -> tuple[str, str]:
    """``(code, message)`` of Graph's error body (``{"error": {"code", "message"}}``)."""
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return "", (body.decode("utf-8", "replace") if isinstance(body, bytes) else body)[:300]
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, Mapping):
        return str(error.get("code") or ""), str(error.get("message") or "")
    return "", ""


def map_error(status: int, code: str, message: str, *, not_found: str) -> MailgateError:
    """The mailgate error for a permanent Graph failure."""
    text = message or f"Microsoft Graph answered {status}"
    if status == 400:
        return BadRequest(text, code or "BadRequest")
    if status == 401:
        return AuthenticationError(text, server_response=f"{status} {code}: {message}")
    if status == 403:
        return Forbidden(text, code or "Forbidden")
    if status == 404:
        return NotFound(text if not_found == "NotFound" else _missing(not_found), not_found)
    if status == 409:
        return Conflict(text, code or "Conflict")
    if status == 410:
        return CursorExpired(text, server_response=f"{status} {code}")
    if classify(status) is Retry.TRANSIENT:
        return ConnectError(f"Microsoft Graph is unavailable ({status} {code})")
    return CommandError(text, status="NO", code=code, server_response=f"{status} {code}")


_MISSING_TEXT = {
    "MessageNotFound": "Requested message was not found",
    "AttachmentNotFound": "Requested attachment was not found",
    "MailboxNotFound": "Mailbox does not exist",
}


def _missing(code: str) -> str:
    return _MISSING_TEXT.get(code, "Not found")


class MailboxLimiter:
    """At most :data:`MAX_IN_FLIGHT` requests of one mailbox at once; a 429 pauses them all."""

    def __init__(self, slots: int = MAX_IN_FLIGHT) -> None:
        self._sem = asyncio.Semaphore(slots)
        self._not_before = 0.0

    def pause(self, seconds: float) -> None:
        self._not_before = max(self._not_before, time.monotonic() + seconds)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._sem:
            wait = self._not_before - time.monotonic()
            while wait > 0:  # a 429 paused the mailbox: wait out its Retry-After
                await asyncio.sleep(wait)
                wait = self._not_before - time.monotonic()
            yield


class GraphHttp:
    """The process's one pooled HTTP client and its per-mailbox limiters."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._limiters: dict[str, MailboxLimiter] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                timeout=TIMEOUTS, limits=POOL_LIMITS, transport=self._transport
            )
        return self._client

    def limiter(self, key: str) -> MailboxLimiter:
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = MailboxLimiter()
        return limiter

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@dataclass(frozen=True)
class BatchPart:
    """One request of a JSON batch; ``url`` is relative to the mailbox root unless ``absolute``."""

    method: str
    url: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    absolute: bool = False


@dataclass
class BatchResult:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def raw(self) -> bytes:
        """A non-JSON body (Graph sends those base64-encoded in a batch)."""
        if isinstance(self.body, str):
            return base64.b64decode(self.body)
        return json.dumps(self.body).encode() if self.body is not None else b""

    def error(self, not_found: str = "NotFound") -> MailgateError:
        code, message = graph_error_of(self.body if isinstance(self.body, Mapping) else None)
        return map_error(self.status, code, message, not_found=not_found)


def api_base(api_url: str) -> str:
    """``https://graph.microsoft.com`` (or one with ``/v1.0``) → ``.../v1.0``."""
    base = api_url.rstrip("/")
    return base if base.endswith("/" + API_VERSION) else f"{base}/{API_VERSION}"


class GraphUncertain(ConnectError):
    """A request that must not be repeated may or may not have reached Graph."""


class GraphClient:
    """Requests against one mailbox (``/me`` or ``/users/{mailbox}``) with one account's token."""

    def __init__(
        self,
        http: GraphHttp,
        *,
        api_url: str,
        root: str,
        account: str,
        tokens: TokenProvider,
    ) -> None:
        self.http = http
        self.base = api_base(api_url)
        self.root = root  # "/me" or "/users/alice@contoso.com"
        self.account = account
        self._tokens = tokens
        self.limiter = http.limiter(f"{self.base}{root.lower()}")
        self.last_token: str | None = None  # kept so close() can still clean up after a delete
        self.requests = 0  # requests sent (batches count once)
        self.log = log.bind(account=account)

    # -- tokens --------------------------------------------------------------------------------

    async def _token(self, force: bool = False) -> str:
        refused = self.last_token if force else None
        _, token = await self._tokens.access_token(self.account, refused=refused)
        self.last_token = token
        return token

    def url(self, path: str, *, absolute: bool = False) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base}{'' if absolute else self.root}{path}"

    def same_origin(self, link: str) -> bool:
        """A link the server handed us (nextLink, deltaLink) points at our API host."""
        ours, theirs = urlsplit(self.base), urlsplit(link)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)

    # -- one request ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        absolute: bool = False,
        not_found: str = "NotFound",
        token: str | None = None,
    ) -> httpx.Response:
        """Send one request with retries; a 2xx response (body read) or a mapped error."""
        url = self.url(path, absolute=absolute)
        if url.startswith(("http://", "https://")) and not self.same_origin(url):
            raise ConnectError("Microsoft Graph returned a link to another host")
        hdrs = {"Prefer": PREFER_IMMUTABLE, **(headers or {})}
        refreshed = token is not None
        attempt = 0
        while True:
            bearer = token or await self._token()
            hdrs["Authorization"] = f"Bearer {bearer}"
            try:
                async with self.limiter.slot():
                    self.requests += 1
                    resp = await self.http.client.request(
                        method, url, params=params, json=json_body, content=content, headers=hdrs
                    )
            except httpx.HTTPError as exc:
                if attempt + 1 >= MAX_ATTEMPTS:
                    raise ConnectError(f"Microsoft Graph is unreachable: {exc!r}") from exc
                await asyncio.sleep(retry_after({}, attempt))
                attempt += 1
                continue
            if resp.status_code < 300:
                return resp
            if resp.status_code == 401 and not refreshed:
                refreshed = True
                await self._token(force=True)
                continue
            if classify(resp.status_code) is Retry.TRANSIENT and attempt + 1 < MAX_ATTEMPTS:
                wait = retry_after(resp.headers, attempt)
                if resp.status_code == 429:
                    self.limiter.pause(wait)
                self.log.info("graph transient failure", status=resp.status_code, wait=wait)
                await asyncio.sleep(wait)
                attempt += 1
                continue
            code, message = graph_error_of(resp.content)
            raise map_error(resp.status_code, code, message, not_found=not_found)

    async def post_once(
        self, path: str, *, content: bytes, headers: Mapping[str, str]
    ) -> httpx.Response:
        """A POST that must not run twice (sendMail): retried only when Graph says it did not
        act on it (401 before a token refresh, 429 with Retry-After); a network failure after
        the request may have reached Graph raises :class:`GraphUncertain`."""
        url = self.url(path)
        refreshed = False
        attempt = 0
        while True:
            hdrs = {**headers, "Authorization": f"Bearer {await self._token(force=refreshed)}"}
            try:
                async with self.limiter.slot():
                    self.requests += 1
                    resp = await self.http.client.post(url, content=content, headers=hdrs)
            except httpx.ConnectError as exc:
                raise ConnectError(f"Microsoft Graph is unreachable: {exc!r}") from exc
            except httpx.HTTPError as exc:
                raise GraphUncertain(f"the connection broke during a send: {exc!r}") from exc
            if resp.status_code < 300:
                return resp
            if resp.status_code == 401 and not refreshed:
                refreshed = True
                continue
            if resp.status_code == 429 and attempt + 1 < MAX_ATTEMPTS:
                wait = retry_after(resp.headers, attempt)
                self.limiter.pause(wait)
                await asyncio.sleep(wait)
                attempt += 1
                continue
            code, message = graph_error_of(resp.content)
            raise map_error(resp.status_code, code, message, not_found="NotFound")

    async def get(self, path: str, **kw: Any) -> dict[str, Any]:
        resp = await self.request("GET", path, **kw)
        data = resp.json()
        return data if isinstance(data, dict) else {}

    async def post(self, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        resp = await self.request("POST", path, json_body=body, **kw)
        if not resp.content:
            return {}
        data = resp.json()
        return data if isinstance(data, dict) else {}

    async def patch(self, path: str, body: Any, **kw: Any) -> dict[str, Any]:
        resp = await self.request("PATCH", path, json_body=body, **kw)
        data = resp.json() if resp.content else {}
        return data if isinstance(data, dict) else {}

    async def delete(self, path: str, **kw: Any) -> None:
        await self.request("DELETE", path, **kw)

    # -- streaming -----------------------------------------------------------------------------

    async def stream(self, path: str, *, not_found: str = "NotFound") -> AsyncIterator[bytes]:
        """The body of ``GET path`` in chunks; checks run before the first chunk is yielded.

        The mailbox slot is held until the body is read or the iterator is closed."""
        url = self.url(path)
        refreshed = False
        attempt = 0
        while True:
            hdrs = {"Prefer": PREFER_IMMUTABLE, "Authorization": f"Bearer {await self._token()}"}
            async with self.limiter.slot():
                self.requests += 1
                try:
                    async with self.http.client.stream("GET", url, headers=hdrs) as resp:
                        if resp.status_code < 300:
                            async for chunk in resp.aiter_bytes(STREAM_CHUNK):
                                yield chunk
                            return
                        body = await resp.aread()
                except httpx.HTTPError as exc:
                    raise ConnectError(f"Microsoft Graph is unreachable: {exc!r}") from exc
            if resp.status_code == 401 and not refreshed:
                refreshed = True
                await self._token(force=True)
                continue
            if classify(resp.status_code) is Retry.TRANSIENT and attempt + 1 < MAX_ATTEMPTS:
                wait = retry_after(resp.headers, attempt)
                if resp.status_code == 429:
                    self.limiter.pause(wait)
                await asyncio.sleep(wait)
                attempt += 1
                continue
            code, message = graph_error_of(body)
            raise map_error(resp.status_code, code, message, not_found=not_found)

    # -- JSON batching -------------------------------------------------------------------------

    async def batch(self, parts: Sequence[BatchPart]) -> list[BatchResult]:
        """Run ``parts`` in JSON batches of :data:`BATCH_LIMIT`; parts answered 429/5xx are
        sent again (after Retry-After) until they settle or run out of attempts."""
        results: list[BatchResult | None] = [None] * len(parts)
        for start in range(0, len(parts), BATCH_LIMIT):
            pending = list(range(start, min(start + BATCH_LIMIT, len(parts))))
            attempt = 0
            while pending:
                answers = await self._one_batch([(i, parts[i]) for i in pending])
                retry: list[int] = []
                wait = 0.0
                for i in pending:
                    res = answers.get(i)
                    if (
                        res is not None
                        and classify(res.status) is Retry.TRANSIENT
                        and (attempt + 1 < MAX_ATTEMPTS)
                    ):
                        retry.append(i)
                        wait = max(wait, retry_after(res.headers, attempt))
                        continue
                    results[i] = res or BatchResult(502, None, {})
                if retry:
                    self.limiter.pause(wait)
                    await asyncio.sleep(wait)
                    attempt += 1
                pending = retry
        return [r if r is not None else BatchResult(502, None, {}) for r in results]

    async def _one_batch(self, parts: list[tuple[int, BatchPart]]) -> dict[int, BatchResult]:
        requests = []
        for i, part in parts:
            url = part.url if part.absolute else f"{self.root}{part.url}"
            entry: dict[str, Any] = {
                "id": str(i),
                "method": part.method,
                "url": url,
                "headers": {"Prefer": PREFER_IMMUTABLE, **part.headers},
            }
            if part.body is not None:
                entry["body"] = part.body
                entry["headers"].setdefault("Content-Type", "application/json")
            requests.append(entry)
        data = await self.post("/$batch", {"requests": requests}, absolute=True)
        out: dict[int, BatchResult] = {}
        for answer in data.get("responses") or []:
            try:
                idx = int(answer.get("id"))
            except (TypeError, ValueError):
                continue
            headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
            out[idx] = BatchResult(int(answer.get("status") or 502), answer.get("body"), headers)
        return out

    # -- paging --------------------------------------------------------------------------------

    async def all_pages(
        self, path: str, params: Mapping[str, str] | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Every ``value`` entry of a collection, following ``@odata.nextLink``."""
        out: list[dict[str, Any]] = []
        data = await self.get(path, params=params)
        while True:
            out.extend(v for v in data.get("value") or [] if isinstance(v, dict))
            link = data.get("@odata.nextLink")
            if not link or (limit is not None and len(out) >= limit):
                return out
            data = await self.get(str(link))
