"""Small helpers shared by the integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from tests.servers.redis import sync_client

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call ``probe`` until it returns a truthy value; fail with the last value after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: last={last!r}")
        time.sleep(interval)


def wait_state(
    http: httpx.Client, account: str, state: str | set[str], timeout: float = 20.0
) -> dict[str, Any]:
    wanted = {state} if isinstance(state, str) else state

    def probe() -> dict[str, Any] | None:
        info = http.get(f"/v1/account/{account}").json()
        return info if info.get("state") in wanted else None

    try:
        return wait_for(probe, timeout=timeout, what=f"{account} in state {wanted}")
    except AssertionError:
        info = http.get(f"/v1/account/{account}").json()
        raise AssertionError(f"{account} never reached {wanted}: {info}") from None


def imap_account(
    account: str, user: str, password: str, host: str, port: int, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account": account,
        "name": f"Test {account}",
        "email": f"{user}@example.test",
        "imap": {
            "host": host,
            "port": port,
            "secure": False,
            # the test Dovecot offers STARTTLS with a self-signed certificate
            "tls": {"rejectUnauthorized": False},
            "auth": {"user": user, "pass": password},
        },
    }
    body.update(extra)
    return body


def account_events(redis_url: str, account: str) -> list[dict[str, Any]]:
    """Every event in an account's durable event log, oldest first."""
    import json

    client = sync_client(redis_url)
    try:
        rows = client.xrange(f"mg:{{{account}}}:events")
    finally:
        client.close()
    out = []
    for event_id, fields in rows:
        entry = json.loads(fields[b"e"])
        entry["id"] = event_id.decode()
        out.append(entry)
    return out


def wait_event(
    redis_url: str,
    account: str,
    event: str,
    *,
    timeout: float = 20.0,
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """The first event of that name (matching ``where``) in the account's log."""

    def probe() -> dict[str, Any] | None:
        for entry in account_events(redis_url, account):
            if entry["event"] == event and (where is None or where(entry)):
                return entry
        return None

    return wait_for(probe, timeout=timeout, what=f"{event} for {account}")
