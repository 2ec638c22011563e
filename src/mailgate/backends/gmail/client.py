"""Gmail REST v1 over httpx: authentication, quota budget, retries, and the batch endpoint.

Exceptions (all from :mod:`mailgate.errors`)::

    GmailError (CommandError)      Google answered an error that retrying cannot fix
    ├── GmailNotFound              404: the message, label or history id does not exist
    AuthenticationError            401 even with a freshly refreshed token
    ConnectError                   network failure, or still throttled after every retry
    Forbidden                      403 for a missing scope (e.g. delete without mail.google.com)
    BadRequest                     400 (an invalid ``q``, label name, ...)

Every request first spends its method's quota units from the account's
:class:`~.quota.QuotaBudget` (waiting when it is empty). 429, 403 rate-limit answers and 5xx
are retried with backoff honouring ``Retry-After`` (:func:`~.quota.retry_decision`); a throttle
pauses every request of the account, not just the one that was refused.

One pooled :class:`httpx.AsyncClient` serves every Gmail account of a process
(:func:`shared_http`). :meth:`GmailClient.batch` sends up to :data:`BATCH_SIZE` calls in one
``multipart/mixed`` request (``/batch/gmail/v1``); parts refused for rate reasons are sent again
in a later round, so a batch answers every item or raises.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import structlog

from mailgate.backends.gmail.quota import QuotaBudget, retry_decision, units_of
from mailgate.backends.oauth import TokenProvider
from mailgate.errors import (
    AuthenticationError,
    BadRequest,
    CommandError,
    ConnectError,
    Forbidden,
    MailgateError,
)

#: Calls per batch request (Google recommends at most 50; the endpoint takes 100).
BATCH_SIZE = 50
#: Seconds a token from the provider is reused before asking it again.
TOKEN_REUSE = 20.0
#: Timeouts of every HTTP phase, in seconds.
TIMEOUTS = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=30.0)
#: Connection pool of the process-wide client.
POOL_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)
#: Transport failures retried before a request fails with ConnectError.
MAX_TRANSPORT_RETRIES = 3

log = structlog.get_logger("mailgate.gmail")

_shared: dict[int, httpx.AsyncClient] = {}


def shared_http() -> httpx.AsyncClient:
    """The process's pooled client for Google APIs (one per event loop)."""
    loop = asyncio.get_running_loop()
    client = _shared.get(id(loop))
    if client is None or client.is_closed:
        client = httpx.AsyncClient(timeout=TIMEOUTS, limits=POOL_LIMITS, follow_redirects=False)
        _shared[id(loop)] = client
    return client


async def close_shared_http() -> None:
    """Close the pooled client of the running loop (process shutdown)."""
    loop = asyncio.get_running_loop()
    client = _shared.pop(id(loop), None)
    if client is not None:
        await client.aclose()


_budgets: dict[str, QuotaBudget] = {}


def budget_for(account: str) -> QuotaBudget:
    """The account's quota budget in this process (shared by its backend and watcher)."""
    budget = _budgets.get(account)
    if budget is None:
        budget = _budgets[account] = QuotaBudget(now=time.monotonic())
    return budget


class GmailError(CommandError):
    """Google refused a request for a reason retrying cannot fix."""

    def __init__(self, status: int, reason: str | None, message: str) -> None:
        super().__init__(
            f"Gmail API error {status}: {message}",
            status="NO",
            code=reason,
            server_response=message,
        )
        self.http_status = status
        self.reason = reason


class GmailNotFound(GmailError):
    """404: the message, label, attachment or history id named does not exist."""


class GmailUncertain(ConnectError):
    """The connection failed after a non-idempotent request (a send) may have reached Google."""


@dataclass(frozen=True, slots=True)
class Call:
    """One Gmail call: ``method`` names its quota weight (``"messages.get"``)."""

    method: str
    verb: str
    path: str  # below /gmail/v1/users/me, e.g. "messages/123"
    params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None
    body: Any = None


@dataclass
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    retry_after: str | None = None
    reason: str | None = None
    message: str = ""

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else {}


@dataclass
class ClientStats:
    """Counters of one client (for logs and the benchmark)."""

    requests: int = 0
    units: int = 0
    retries: int = 0
    throttled: int = 0
    by_method: dict[str, int] = field(default_factory=dict)


def _error_facts(status: int, body: bytes) -> tuple[str | None, str]:
    try:
        doc = json.loads(body)
        error = doc.get("error") or {}
        reason = None
        for item in error.get("errors") or []:
            reason = item.get("reason") or reason
        details = error.get("details") or []
        for item in details:
            reason = reason or item.get("reason")
        reason = reason or error.get("status")
        return (str(reason) if reason else None), str(error.get("message") or status)
    except (ValueError, AttributeError, TypeError):
        return None, body[:200].decode("utf-8", "replace") or str(status)


def _query(params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> str:
    if not params:
        return ""
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            pairs.append((key, "true" if v is True else "false" if v is False else str(v)))
    return urlencode(pairs)


class GmailClient:
    """Gmail calls for one account."""

    def __init__(
        self,
        account: str,
        tokens: TokenProvider,
        api_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        budget: QuotaBudget | None = None,
    ) -> None:
        self.account = account
        self._tokens = tokens
        self.api_url = api_url.rstrip("/")
        self._api_path = urlsplit(self.api_url).path.rstrip("/")
        self._http = http
        self.budget = budget or budget_for(account)
        self._token: tuple[str, float] | None = None
        self.stats = ClientStats()
        self.log = log.bind(account=account)

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http if self._http is not None else shared_http()

    # -- tokens and budget -------------------------------------------------------------------
    async def _access_token(self, *, force: bool = False, last_ok: bool = False) -> str:
        now = time.monotonic()
        if not force and self._token is not None and now - self._token[1] < TOKEN_REUSE:
            return self._token[0]
        try:
            refused = self._token[0] if force and self._token is not None else None
            _user, token = await self._tokens.access_token(self.account, refused=refused)
        except MailgateError:
            if last_ok and self._token is not None:
                return self._token[0]  # e.g. the account was just deleted: its last token
            raise
        self._token = (token, now)
        return token

    async def _spend(self, method: str, count: int = 1) -> None:
        units = units_of(method) * count
        while True:
            wait = self.budget.take(units, time.monotonic())
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        self.stats.units += units
        self.stats.by_method[method] = self.stats.by_method.get(method, 0) + count

    def _throttled(self, delay: float) -> None:
        self.stats.throttled += 1
        self.budget.pause(delay, time.monotonic())

    # -- one request ---------------------------------------------------------------------------
    def url(self, path: str, *, upload: bool = False) -> str:
        prefix = "/upload/gmail/v1/users/me/" if upload else "/gmail/v1/users/me/"
        return self.api_url + prefix + path

    async def _send(
        self,
        verb: str,
        url: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None,
        json_body: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        token: str,
        idempotent: bool = True,
    ) -> _Answer:
        query = _query(params)
        full = f"{url}?{query}" if query else url
        sent_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        for attempt in range(MAX_TRANSPORT_RETRIES + 1):
            try:
                resp = await self.http.request(
                    verb, full, json=json_body, content=content, headers=sent_headers
                )
                break
            except httpx.TransportError as exc:
                if not idempotent and not isinstance(exc, httpx.ConnectError | httpx.PoolTimeout):
                    raise GmailUncertain(f"Gmail API connection lost mid-request: {exc}") from exc
                if attempt >= MAX_TRANSPORT_RETRIES:
                    raise ConnectError(f"Gmail API unreachable: {exc}") from exc
                await asyncio.sleep(0.2 * 2**attempt)
        self.stats.requests += 1
        answer = _Answer(resp.status_code, resp.headers, resp.content)
        if resp.status_code >= 400:
            answer.retry_after = resp.headers.get("retry-after")
            answer.reason, answer.message = _error_facts(resp.status_code, resp.content)
        return answer

    async def request(
        self,
        method: str,
        verb: str,
        path: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        upload: bool = False,
        idempotent: bool = True,
        last_token_ok: bool = False,
    ) -> Any:
        """One call; the decoded JSON answer (``{}`` for an empty one). A non-``idempotent``
        call is never sent twice after its bytes may have reached Google. ``last_token_ok``:
        when the token provider fails, use the last token it gave (a deleted account's
        clean-up)."""
        answer = await self.raw_request(
            method,
            verb,
            path,
            params=params,
            json_body=json_body,
            content=content,
            headers=headers,
            upload=upload,
            idempotent=idempotent,
            last_token_ok=last_token_ok,
        )
        return answer.json()

    async def raw_request(
        self,
        method: str,
        verb: str,
        path: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        upload: bool = False,
        url: str | None = None,
        idempotent: bool = True,
        last_token_ok: bool = False,
    ) -> _Answer:
        target = url or self.url(path, upload=upload)
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            await self._spend(method)
            token = await self._access_token(last_ok=last_token_ok)
            answer = await self._send(
                verb,
                target,
                params=params,
                json_body=json_body,
                content=content,
                headers=headers,
                token=token,
                idempotent=idempotent,
            )
            if answer.status < 400:
                return answer
            if answer.status == 401 and not refreshed:
                refreshed = True
                await self._access_token(force=True)
                continue
            decision = retry_decision(answer.status, answer.reason, answer.retry_after, attempt)
            if decision.retry:
                self.stats.retries += 1
                if decision.throttled:
                    self._throttled(decision.delay)
                self.log.info(
                    "gmail retry", method=method, status=answer.status, delay=decision.delay
                )
                await asyncio.sleep(decision.delay)
                continue
            raise self._final_error(answer)

    def _final_error(self, answer: _Answer) -> Exception:
        status, reason, message = answer.status, answer.reason, answer.message
        if status == 401:
            return AuthenticationError(
                "Gmail API refused the access token", server_response=message
            )
        if status == 404:
            return GmailNotFound(status, reason, message)
        if status == 400:
            return BadRequest(f"Gmail API: {message}", "GmailApiError")
        if status == 403 and reason not in (None, "rateLimitExceeded", "userRateLimitExceeded"):
            return Forbidden(f"Gmail API: {message}", "GmailForbidden")
        if status in (429, 403) or status >= 500:
            return ConnectError(
                f"Gmail API still failing after retries ({status}): {message}",
                server_response=message,
            )
        return GmailError(status, reason, message)

    # -- batch ---------------------------------------------------------------------------------
    async def batch(self, calls: Sequence[Call]) -> list[Any | None]:
        """Answers of ``calls`` in order (``None`` for a 404), in batches of BATCH_SIZE."""
        results: list[Any | None] = [None] * len(calls)
        for start in range(0, len(calls), BATCH_SIZE):
            chunk = list(range(start, min(start + BATCH_SIZE, len(calls))))
            await self._batch_round(calls, chunk, results)
        return results

    async def _batch_round(
        self, calls: Sequence[Call], indexes: list[int], results: list[Any | None]
    ) -> None:
        pending = indexes
        attempt = 0
        refreshed = False
        while pending:
            attempt += 1
            if len(pending) == 1:  # no multipart overhead for one call
                call = calls[pending[0]]
                try:
                    results[pending[0]] = await self.request(
                        call.method, call.verb, call.path, params=call.params, json_body=call.body
                    )
                except GmailNotFound:
                    results[pending[0]] = None
                return
            for index in pending:
                await self._spend(calls[index].method)
            token = await self._access_token()
            boundary = "batch_" + secrets.token_hex(12)
            body = self._batch_body([calls[i] for i in pending], pending, boundary)
            answer = await self._send(
                "POST",
                self.api_url + "/batch/gmail/v1",
                params=None,
                json_body=None,
                content=body,
                headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
                token=token,
            )
            if answer.status >= 400:
                if answer.status == 401 and not refreshed:
                    refreshed = True
                    await self._access_token(force=True)
                    continue
                decision = retry_decision(answer.status, answer.reason, answer.retry_after, attempt)
                if not decision.retry:
                    raise self._final_error(answer)
                if decision.throttled:
                    self._throttled(decision.delay)
                await asyncio.sleep(decision.delay)
                continue
            parts = parse_batch(answer.headers.get("content-type", ""), answer.body)
            again: list[int] = []
            delay = 0.0
            throttled = False
            for index in pending:
                part = parts.get(f"item{index}")
                if part is None:
                    again.append(index)
                    continue
                status, part_headers, part_body = part
                if status < 400:
                    results[index] = json.loads(part_body) if part_body.strip() else {}
                    continue
                if status == 404:
                    results[index] = None
                    continue
                reason, message = _error_facts(status, part_body)
                if status == 401 and not refreshed:
                    again.append(index)
                    continue
                decision = retry_decision(status, reason, part_headers.get("retry-after"), attempt)
                if not decision.retry:
                    raise self._final_error(_Answer(status, part_headers, part_body, None,
                                                    reason, message))  # fmt: skip
                again.append(index)
                delay = max(delay, decision.delay)
                throttled = throttled or decision.throttled
            if again and any(parts.get(f"item{i}", (0,))[0] == 401 for i in again):
                refreshed = True
                await self._access_token(force=True)
            if again:
                self.stats.retries += len(again)
                if throttled:
                    self._throttled(delay)
                if delay:
                    await asyncio.sleep(delay)
            pending = again

    def _batch_body(self, calls: Sequence[Call], indexes: Sequence[int], boundary: str) -> bytes:
        pieces: list[bytes] = []
        for index, call in zip(indexes, calls, strict=True):
            query = _query(call.params)
            target = f"{self._api_path}/gmail/v1/users/me/{call.path}"
            if query:
                target += "?" + query
            lines = [
                f"--{boundary}",
                "Content-Type: application/http",
                f"Content-ID: <item{index}>",
                "",
                f"{call.verb} {target} HTTP/1.1",
            ]
            payload = b""
            if call.body is not None:
                payload = json.dumps(call.body).encode()
                lines.append("Content-Type: application/json")
                lines.append(f"Content-Length: {len(payload)}")
            lines += ["", ""]
            pieces.append("\r\n".join(lines).encode() + payload + b"\r\n")
        pieces.append(f"--{boundary}--\r\n".encode())
        return b"".join(pieces)


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = data.find(sep)
        if at >= 0:
            return data[:at], data[at + len(sep) :]
    return data, b""


def _header_map(head: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def parse_batch(content_type: str, body: bytes) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """``{content id: (status, headers, body)}`` of a ``multipart/mixed`` batch answer."""
    boundary = ""
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        return {}
    out: dict[str, tuple[int, dict[str, str], bytes]] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        outer_head, inner = _split_head(chunk.lstrip(b"\r\n"))
        content_id = _header_map(outer_head).get("content-id", "").strip("<>")
        content_id = content_id.removeprefix("response-")
        head, payload = _split_head(inner)
        lines = head.decode("latin-1").splitlines()
        if not lines:
            continue
        status_line = lines[0].split()
        try:
            status = int(status_line[1])
        except (IndexError, ValueError):
            continue
        headers = _header_map("\n".join(lines[1:]).encode("latin-1"))
        length = headers.get("content-length")
        if length is not None and length.isdigit():
            payload = payload[: int(length)]
        else:
            payload = payload.rstrip(b"\r\n")
        out[content_id] = (status, headers, payload)
    return out
