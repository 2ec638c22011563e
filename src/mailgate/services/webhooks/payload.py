"""What is sent for one event: the target URL, the envelope bytes and the headers. Pure.

Targets (as EmailEngine 2.x's notify worker): ``webhooksEnabled`` is the master switch; when it
is on, an account with its own ``webhooks`` URL gets its events there *instead of* the global
``webhooks`` URL, every other account's events go to the global URL. ``webhookEvents`` filters
both (``"*"`` = every event; an empty list = none) and ``inboxNewOnly`` drops ``messageNew`` for
messages outside the Inbox. Headers: the global ``webhooksCustomHeaders`` then the account's
``webhooksCustomHeaders`` (a later key replaces an earlier one, case-insensitively); user info in
the URL becomes HTTP Basic auth. The headers mailgate computes (signature, event id, content type)
are set last and cannot be overridden.

The envelope is EmailEngine's ``{serviceUrl, account, date, path, specialUse, event, data}``, in
that key order, ``path``/``specialUse`` omitted when the event has none (as EmailEngine does).

Ids: an event's stream id is unique only within its account's stream (two accounts can both have
``1714557600000-0``), while receivers deduplicate on ``X-EE-Wh-Event-Id`` across everything (it is
a UUID in EmailEngine). So ``X-EE-Wh-Event-Id`` is a UUIDv5 of (account, stream id): globally
unique, and the same on every retry, restart and worker; ``X-EE-Wh-Id`` carries the stream id
itself (EmailEngine puts its queue job id there). Like EmailEngine, the id is not in the body.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from mailgate import __version__
from mailgate.services.webhooks.signing import SIGNATURE_HEADER, sign

USER_AGENT = f"mailgate/{__version__}"
EVENT_ID_HEADER = "X-EE-Wh-Event-Id"
JOB_ID_HEADER = "X-EE-Wh-Id"  # EmailEngine's queue job id; mailgate's is the stream id
ATTEMPTS_HEADER = "X-EE-Wh-Attempts"  # this attempt's number, 1 on the first
ATTEMPTS_MADE_HEADER = "X-EE-Wh-Attempts-Made"  # EmailEngine's: attempts before this one
QUEUED_TIME_HEADER = "X-EE-Wh-Queued-Time"  # whole seconds since the event, e.g. "5s"

# computed by mailgate, never taken from custom headers
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        SIGNATURE_HEADER,
        EVENT_ID_HEADER,
        JOB_ID_HEADER,
        ATTEMPTS_HEADER,
        ATTEMPTS_MADE_HEADER,
        QUEUED_TIME_HEADER,
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Host",
        "Connection",
    )
)
EVENT_ID_NAMESPACE = uuid.UUID("5b0b8f5e-6a43-4d1c-9a51-7c1f0c3e2d10")  # never change it
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class WebhookConfig:
    """The settings delivery depends on, read once per account run."""

    enabled: bool = False
    url: str | None = None
    events: frozenset[str] | None = None  # None: every event
    custom_headers: tuple[tuple[str, str], ...] = ()
    service_url: str = ""
    secret: str | None = None
    block_private: bool = False
    inbox_new_only: bool = False

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> WebhookConfig:
        events = values.get("webhookEvents")
        url = str(values.get("webhooks") or "").strip()
        return cls(
            enabled=bool(values.get("webhooksEnabled")),
            url=url or None,
            events=None if events is None or "*" in events else frozenset(map(str, events)),
            custom_headers=header_pairs(values.get("webhooksCustomHeaders")),
            service_url=str(values.get("serviceUrl") or ""),
            secret=str(values["serviceSecret"]) if values.get("serviceSecret") else None,
            block_private=bool(values.get("webhooksBlockPrivate")),
            inbox_new_only=bool(values.get("inboxNewOnly")),
        )


SETTING_NAMES = (
    "webhooksEnabled",
    "webhooks",
    "webhookEvents",
    "webhooksCustomHeaders",
    "serviceUrl",
    "serviceSecret",
    "webhooksBlockPrivate",
    "inboxNewOnly",
)


@dataclass(frozen=True)
class AccountHooks:
    """What the account record adds: its own URL and headers."""

    exists: bool = True
    url: str | None = None
    custom_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def header_pairs(raw: object) -> tuple[tuple[str, str], ...]:
    """``[{key, value}, ...]`` (dicts or objects with ``key``/``value``) as pairs."""
    out: list[tuple[str, str]] = []
    if not isinstance(raw, Iterable) or isinstance(raw, str | bytes):
        return ()
    for item in raw:
        if isinstance(item, Mapping):
            key, value = item.get("key"), item.get("value", "")
        else:
            key, value = getattr(item, "key", None), getattr(item, "value", "")
        if isinstance(key, str) and key:
            out.append((key, "" if value is None else str(value)))
    return tuple(out)


def wanted(
    event: str, path: str | None, special_use: str | None, data: Any, cfg: WebhookConfig
) -> bool:
    """The ``webhookEvents`` filter, and ``inboxNewOnly`` for ``messageNew``."""
    if cfg.events is not None and event not in cfg.events:
        return False
    if event == "messageNew" and cfg.inbox_new_only:
        return is_inbox(path, special_use, data)
    return True


def is_inbox(path: str | None, special_use: str | None, data: Any) -> bool:
    if path == "INBOX" or special_use == "\\Inbox":
        return True
    if isinstance(data, Mapping):
        labels = data.get("labels")
        if data.get("messageSpecialUse") == "\\Inbox":
            return True
        if isinstance(labels, list) and "\\Inbox" in labels:
            return True
    return False


def target_url(cfg: WebhookConfig, account: AccountHooks) -> str | None:
    """Where the account's events go, or None (not delivered, the cursor still advances)."""
    if not cfg.enabled:
        return None
    return account.url or cfg.url


def body(entry: Mapping[str, Any], service_url: str) -> bytes:
    """The envelope as the exact bytes that are signed and sent."""
    envelope: dict[str, Any] = {"serviceUrl": service_url, "account": entry.get("account")}
    envelope["date"] = entry.get("date")
    if entry.get("path") is not None:
        envelope["path"] = entry["path"]
    if entry.get("specialUse") is not None:
        envelope["specialUse"] = entry["specialUse"]
    envelope["event"] = entry.get("event")
    envelope["data"] = entry.get("data")
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_uuid(account: str, stream_id: str) -> str:
    """The ``X-EE-Wh-Event-Id`` of an event: stable, and unique across accounts."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{account}\0{stream_id}"))


def event_time_ms(event_id: str) -> int:
    """The stream id's millisecond part: when the event was appended."""
    try:
        return int(event_id.split("-", 1)[0])
    except ValueError:
        return int(time.time() * 1000)


def safe_header(key: str, value: str) -> bool:
    return (
        bool(_TOKEN.match(key))
        and not _BAD_VALUE.search(value)
        and key.lower() not in RESERVED_HEADERS
    )


def build_request(
    url: str,
    raw_body: bytes,
    *,
    account_id: str,
    event_id: str,
    attempt: int,
    cfg: WebhookConfig,
    account: AccountHooks,
    now_ms: int | None = None,
) -> Request:
    """The URL (user info removed) and every header of one attempt; ``event_id`` is the
    stream id of the event in ``account_id``'s log."""
    parts = urlsplit(url)
    headers: dict[str, str] = {"User-Agent": USER_AGENT}
    if parts.username is not None or parts.password is not None:
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
        netloc = parts.netloc.rsplit("@", 1)[1]
        url = urlunsplit(parts._replace(netloc=netloc))
    _merge(headers, cfg.custom_headers)
    _merge(headers, account.custom_headers)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    queued = max(0, round((now - event_time_ms(event_id)) / 1000))
    headers.update(
        {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event_uuid(account_id, event_id),
            JOB_ID_HEADER: event_id,
            ATTEMPTS_HEADER: str(attempt),
            ATTEMPTS_MADE_HEADER: str(attempt - 1),
            QUEUED_TIME_HEADER: f"{queued}s",
        }
    )
    if cfg.secret:
        headers[SIGNATURE_HEADER] = sign(raw_body, cfg.secret)
    return Request(url, headers)


def _merge(headers: dict[str, str], pairs: Sequence[tuple[str, str]]) -> None:
    for key, value in pairs:
        if not safe_header(key, value):
            continue  # a bad header would fail every attempt; reserved ones are ours
        for existing in [k for k in headers if k.lower() == key.lower()]:
            del headers[existing]
        headers[key] = value
