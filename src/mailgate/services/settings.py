"""Runtime settings shared by every process, stored in Redis (``GET/POST /v1/settings``).

Keys and meanings follow EmailEngine's settings. Secret values (``serviceSecret``) are encrypted
at rest and reported only as ``true`` (set) or ``false`` by ``GET /v1/settings``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from mailgate.store import keys
from mailgate.store.crypto import SecretBox
from mailgate.store.redis import mapping as redis_mapping

SECRET_KEYS = frozenset({"serviceSecret"})

EVENT_TYPES = (
    "messageNew",
    "messageDeleted",
    "messageUpdated",
    "messageMissing",
    "messageSent",
    "messageDeliveryError",
    "messageFailed",
    "messageBounce",
    "messageComplaint",
    "mailboxReset",
    "mailboxDeleted",
    "mailboxNew",
    "authenticationError",
    "authenticationSuccess",
    "connectError",
    "accountAdded",
    "accountInitialized",
    "accountDeleted",
    "trackOpen",
    "trackClick",
)

DEFAULTS: dict[str, Any] = {
    "webhooksEnabled": False,
    "webhooks": None,
    "webhookEvents": ["*"],
    "webhooksCustomHeaders": [],
    "webhooksBlockPrivate": False,  # mailgate: refuse webhook targets in private/loopback ranges
    "notifyHeaders": [],
    "serviceUrl": "http://127.0.0.1:3000",
    "imapIndexer": "full",
    "resyncDelay": 60,
    "notifyText": False,
    "notifyWebSafeHtml": False,
    "notifyTextSize": 0,
    "notifyAttachments": False,
    "notifyAttachmentSize": 0,
    "notifyCalendarEvents": False,
    "inboxNewOnly": False,
    "ignoreMailCertErrors": False,
    "deliveryAttempts": 10,
    "deliveryRetryDelay": 5.0,  # mailgate: seconds before the first submit retry (doubles)
    "queueKeep": 50,
    "smtpEhloName": None,
    "imapClientName": "mailgate",
    "imapClientVersion": None,
    "imapClientVendor": None,
    "imapClientSupportUrl": None,
    "logs": {"all": False, "maxLogLines": 10000},
    "locale": "en",
    "timezone": None,
    "pageBrandName": "mailgate",
    "enableOAuthTokensApi": False,
    "serviceSecret": None,
    "tokenAuditLog": False,  # record each token's requests (services/token_audit.py)
}


class HeaderPair(BaseModel):
    key: str = Field(max_length=1024)
    value: str = Field(default="", max_length=10240)


class LogSettings(BaseModel):
    all: bool = False
    maxLogLines: int = Field(default=10000, ge=0, le=1_000_000)


class SettingsUpdate(BaseModel):
    """The body of ``POST /v1/settings``; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    webhooksEnabled: bool | None = None
    webhooks: str | None = Field(default=None, max_length=2048)
    webhookEvents: list[str] | None = None
    webhooksCustomHeaders: list[HeaderPair] | None = None
    webhooksBlockPrivate: bool | None = None
    notifyHeaders: list[str] | None = None
    serviceUrl: str | None = Field(default=None, max_length=2048)
    imapIndexer: Literal["full", "fast"] | None = None
    resyncDelay: int | None = Field(default=None, ge=1, le=86400)
    notifyText: bool | None = None
    notifyWebSafeHtml: bool | None = None
    notifyTextSize: int | None = Field(default=None, ge=0)
    notifyAttachments: bool | None = None
    notifyAttachmentSize: int | None = Field(default=None, ge=0)
    notifyCalendarEvents: bool | None = None
    inboxNewOnly: bool | None = None
    ignoreMailCertErrors: bool | None = None
    deliveryAttempts: int | None = Field(default=None, ge=1, le=100)
    deliveryRetryDelay: float | None = Field(default=None, ge=0.01, le=3600)
    queueKeep: int | None = Field(default=None, ge=0)
    smtpEhloName: str | None = Field(default=None, max_length=255)
    imapClientName: str | None = Field(default=None, max_length=255)
    imapClientVersion: str | None = Field(default=None, max_length=255)
    imapClientVendor: str | None = Field(default=None, max_length=255)
    imapClientSupportUrl: str | None = Field(default=None, max_length=1024)
    logs: LogSettings | None = None
    locale: str | None = Field(default=None, max_length=16)
    timezone: str | None = Field(default=None, max_length=64)
    pageBrandName: str | None = Field(default=None, max_length=255)
    enableOAuthTokensApi: bool | None = None
    serviceSecret: str | None = Field(default=None, max_length=1024)
    tokenAuditLog: bool | None = None


class SettingsService:
    def __init__(self, redis: Redis, box: SecretBox) -> None:
        self.redis = redis
        self.box = box

    async def get(self, key: str) -> Any:
        raw = await self.redis.hget(keys.SETTINGS, key)
        if raw is None:
            return DEFAULTS.get(key)
        value = json.loads(raw)
        if key in SECRET_KEYS and isinstance(value, str):
            return self.box.decrypt(value)
        return value

    async def get_many(self, names: list[str] | None = None) -> dict[str, Any]:
        """Settings for the API: ``names`` (or every known key); secrets as booleans."""
        if names:
            wanted = [n for n in names if n != "eventTypes"]
        else:
            wanted = [k for k in DEFAULTS if k not in SECRET_KEYS]
        raws = await self.redis.hmget(keys.SETTINGS, wanted) if wanted else []
        out: dict[str, Any] = {}
        for key, raw in zip(wanted, raws, strict=True):
            value = json.loads(raw) if raw is not None else DEFAULTS.get(key)
            if key in SECRET_KEYS:
                value = bool(value)
            out[key] = value
        if not names or "eventTypes" in names:
            out["eventTypes"] = list(EVENT_TYPES)
        return out

    async def update(self, update: SettingsUpdate) -> list[str]:
        values = update.model_dump(exclude_unset=True, mode="json")
        if not values:
            return []
        values_out: dict[str, str] = {}
        for key, value in values.items():
            stored = (
                self.box.encrypt(value) if key in SECRET_KEYS and isinstance(value, str) else value
            )
            values_out[key] = json.dumps(stored)
        await self.redis.hset(keys.SETTINGS, mapping=redis_mapping(values_out))
        return list(values)
