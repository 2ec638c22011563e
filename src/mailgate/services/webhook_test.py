"""The admin UI's "Test" webhook: one sample event POSTed the way real deliveries are.

The body is the envelope of :func:`mailgate.services.webhooks.payload.body` for a ``test``
event (no account), the headers come from :func:`~mailgate.services.webhooks.payload.
build_request` (custom headers, ``X-EE-Wh-Signature`` when a ``serviceSecret`` is set), and the
target passes the same SSRF egress policy (:mod:`mailgate.services.webhooks.egress`, including
``webhooksBlockPrivate``) with the connection pinned to a checked address. Unlike a delivery, the
receiver's reply is kept (status and the first ``MAX_BODY`` bytes) to show to the admin. Nothing
is retried and nothing is written to Redis.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import httpx

from mailgate.services.webhooks import egress, payload
from mailgate.store.events import iso_now

TEST_TIMEOUT = 10.0  # seconds for the whole test request
MAX_BODY = 4096  # bytes of the receiver's reply kept for display
TEST_EVENT = "test"


@dataclass(frozen=True)
class TestResult:
    """What happened: ``status``/``body`` from the receiver, or ``error`` before any reply."""

    url: str
    status: int | None = None
    body: str = ""
    error: str | None = None
    signed: bool = False
    event_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def sample_entry() -> dict[str, object]:
    """The event-log entry of the sample event."""
    return {
        "account": None,
        "date": iso_now(),
        "event": TEST_EVENT,
        "data": {"nonce": secrets.token_hex(8), "message": "Test webhook from mailgate"},
    }


async def send_test(
    url: str,
    cfg: payload.WebhookConfig,
    *,
    resolver: egress.Resolver = egress.system_resolver,
    timeout: float = TEST_TIMEOUT,
) -> TestResult:
    """POST a signed sample event to ``url``; never raises for network or policy failures."""
    now_ms = int(time.time() * 1000)
    stream_id = f"{now_ms}-0"
    body = payload.body(sample_entry(), cfg.service_url)
    request = payload.build_request(
        url,
        body,
        account_id="",
        event_id=stream_id,
        attempt=1,
        cfg=cfg,
        account=payload.AccountHooks(),
        now_ms=now_ms,
    )
    event_id = request.headers.get(payload.EVENT_ID_HEADER)
    signed = bool(cfg.secret)
    try:
        target = egress.check_url(request.url)
        addresses = await egress.resolve_checked(
            target, block_private=cfg.block_private, resolver=resolver
        )
    except egress.EgressRefused as exc:
        return TestResult(url, error=f"target refused: {exc}", signed=signed)
    except OSError as exc:
        return TestResult(url, error=f"could not resolve the host: {exc}", signed=signed)
    address = addresses[0]
    pinned = httpx.URL(target.parts.geturl()).copy_with(host=str(address), port=target.port)
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    netloc = host if target.port == default_port else f"{host}:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
    ) as http:
        try:
            sent = http.build_request(
                "POST",
                pinned,
                content=body,
                headers={**request.headers, "Host": netloc},
                extensions=extensions,
            )
            response = await http.send(sent, stream=True)
            try:
                kept = bytearray()
                async for chunk in response.aiter_bytes():
                    kept += chunk
                    if len(kept) >= MAX_BODY:
                        break
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return TestResult(url, error=f"timed out after {timeout:g}s", signed=signed)
        except (httpx.HTTPError, OSError) as exc:
            return TestResult(
                url, error=f"request failed: {type(exc).__name__}: {exc}", signed=signed
            )
    text = bytes(kept[:MAX_BODY]).decode("utf-8", "replace")
    return TestResult(url, status=response.status_code, body=text, signed=signed, event_id=event_id)
