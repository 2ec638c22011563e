"""One delivery attempt: egress check, pinned connection, POST, outcome. No retries here.

The attempt as a whole (resolution, connection, request, reading a bounded response) is bounded
by ``ATTEMPT_TIMEOUT``. Redirects are not followed (a 3xx is a failed attempt). The connection
goes to one of the addresses the egress policy checked (the host name stays in the ``Host``
header and the TLS SNI/certificate check), trying the next checked address only when connecting
fails.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from mailgate.services.webhooks import egress

ATTEMPT_TIMEOUT = 30.0  # seconds for one attempt, everything included
CONNECT_TIMEOUT = 10.0  # seconds for one TCP/TLS connect inside that
MAX_RESPONSE_BYTES = 64 * 1024  # response body read (then dropped) to keep the connection
POOL_CONNECTIONS = 100  # per-process HTTP pool
POOL_KEEPALIVE = 50


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    status: int | None = None
    error: str | None = None
    permanent: bool = False  # retrying cannot help (refused by the egress policy, bad URL)

    def describe(self) -> str:
        if self.ok:
            return f"HTTP {self.status}"
        return self.error or f"HTTP {self.status}"


def make_client() -> httpx.AsyncClient:
    """The pooled per-process client: no redirects, no proxy/env settings, our timeouts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(ATTEMPT_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(
            max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_KEEPALIVE
        ),
    )


def _netloc(target: egress.Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


class Deliverer:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        resolver: egress.Resolver = egress.system_resolver,
        timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self.http = http
        self.resolver = resolver
        self.timeout = timeout

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], *, block_private: bool
    ) -> AttemptResult:
        try:
            target = egress.check_url(url)
        except egress.EgressRefused as exc:
            return AttemptResult(False, error=f"target refused: {exc}", permanent=True)
        try:
            async with asyncio.timeout(self.timeout):
                addresses = await egress.resolve_checked(
                    target, block_private=block_private, resolver=self.resolver
                )
                return await self._send(target, addresses, body, headers)
        except egress.EgressRefused as exc:
            return AttemptResult(False, error=f"target refused: {exc}", permanent=True)
        except TimeoutError:
            return AttemptResult(False, error=f"timed out after {self.timeout:g}s")
        except OSError as exc:  # resolution failed: transient
            return AttemptResult(False, error=f"could not resolve {target.host}: {exc}")

    async def _send(
        self,
        target: egress.Target,
        addresses: list[egress.IPAddress],
        body: bytes,
        headers: dict[str, str],
    ) -> AttemptResult:
        last_error = "no address to connect to"
        for address in addresses:
            host = f"[{address}]" if address.version == 6 else str(address)
            url = httpx.URL(target.parts.geturl()).copy_with(host=str(address), port=target.port)
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            request = self.http.build_request(
                "POST",
                url,
                content=body,
                headers={**headers, "Host": _netloc(target)},
                extensions=extensions,
            )
            try:
                response = await self.http.send(request, stream=True, follow_redirects=False)
            except httpx.ConnectError as exc:
                last_error = f"could not connect to {host}:{target.port}: {exc}"
                continue  # try the next checked address
            except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
                return AttemptResult(False, error=f"unusable request: {exc}", permanent=True)
            except httpx.TimeoutException:
                return AttemptResult(False, error=f"timed out after {self.timeout:g}s")
            except (httpx.HTTPError, OSError) as exc:
                return AttemptResult(False, error=f"request failed: {type(exc).__name__}: {exc}")
            try:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > MAX_RESPONSE_BYTES:
                        break
            except (httpx.HTTPError, OSError):
                pass  # the status line is what counts
            finally:
                await response.aclose()
            status = response.status_code
            if 200 <= status < 300:
                return AttemptResult(True, status=status)
            return AttemptResult(
                False, status=status, error=f"HTTP {status} {response.reason_phrase}".strip()
            )
        return AttemptResult(False, error=last_error)
