"""SMTP gateways: named SMTP servers a submit can send through instead of the account's own.

Stored as one hash per gateway (``mg:{mg}:gw:<id>``); the password is encrypted at rest with the
process's :class:`~mailgate.store.crypto.SecretBox` and never shown (``"******"``). Deliveries
update ``deliveries``/``lastUse`` and failures ``lastError``.
"""

from __future__ import annotations

import json
import math
import secrets
from typing import Any

from redis.asyncio import Redis

from mailgate.domain.account import Auth, SmtpConfig
from mailgate.errors import BadRequest, NotFound
from mailgate.store import keys
from mailgate.store.crypto import SecretBox
from mailgate.store.redis import mapping, str_map, text

from .inputs import GatewayCreateIn, GatewayUpdateIn
from .outbox import iso_ms, now_ms

MASK = "******"
MAX_PAGE_SIZE = 1000


def _check_id(gateway_id: str) -> str:
    if not gateway_id or len(gateway_id) > 256 or not gateway_id.isprintable():
        raise BadRequest("Invalid gateway ID", "InputValidationError")
    return gateway_id


class GatewayService:
    def __init__(self, redis: Redis, box: SecretBox) -> None:
        self.redis = redis
        self.box = box

    async def _fields(self, gateway_id: str) -> dict[str, str]:
        fields = str_map(await self.redis.hgetall(keys.gateway(gateway_id)))
        if not fields:
            raise NotFound("Gateway was not found", "GatewayNotFound")
        return fields

    async def create(self, body: GatewayCreateIn) -> dict[str, Any]:
        gateway_id = _check_id(body.gateway or secrets.token_hex(8))
        key = keys.gateway(gateway_id)
        exists = bool(await self.redis.exists(key))
        values: dict[str, str] = {
            "gateway": gateway_id,
            "name": body.name,
            "host": body.host,
            "port": str(body.port),
            "secure": "1" if body.secure else "0",
            "user": body.user or "",
            "pass": self.box.encrypt(body.pass_) if body.pass_ else "",
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping(values))
            pipe.zadd(keys.GATEWAYS, {gateway_id: now_ms()}, nx=True)
            await pipe.execute()
        return {"gateway": gateway_id, "state": "existing" if exists else "new"}

    async def update(self, gateway_id: str, body: GatewayUpdateIn) -> dict[str, Any]:
        await self._fields(gateway_id)
        values: dict[str, str] = {}
        given = body.model_fields_set
        if body.name is not None:
            values["name"] = body.name
        if body.host is not None:
            values["host"] = body.host
        if body.port is not None:
            values["port"] = str(body.port)
        if body.secure is not None:
            values["secure"] = "1" if body.secure else "0"
        if "user" in given:
            values["user"] = body.user or ""
        if "pass_" in given:
            values["pass"] = self.box.encrypt(body.pass_) if body.pass_ else ""
        if values:
            await self.redis.hset(keys.gateway(gateway_id), mapping=mapping(values))
        return {"gateway": gateway_id}

    def _view(self, fields: dict[str, str], *, full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "gateway": fields.get("gateway"),
            "name": fields.get("name") or None,
            "deliveries": int(fields.get("deliveries") or 0),
            "lastUse": iso_ms(int(fields["lastUse"])) if fields.get("lastUse") else None,
        }
        if full:
            out.update(
                {
                    "user": fields.get("user") or None,
                    "pass": MASK if fields.get("pass") else None,
                    "host": fields.get("host"),
                    "port": int(fields.get("port") or 0),
                    "secure": fields.get("secure") == "1",
                }
            )
        if fields.get("lastError"):
            out["lastError"] = json.loads(fields["lastError"])
        return out

    async def get(self, gateway_id: str) -> dict[str, Any]:
        return self._view(await self._fields(gateway_id), full=True)

    async def list(self, page: int, page_size: int) -> dict[str, Any]:
        total = int(await self.redis.zcard(keys.GATEWAYS))
        start = page * page_size
        ids = [
            text(i) for i in await self.redis.zrange(keys.GATEWAYS, start, start + page_size - 1)
        ]
        rows: list[dict[str, Any]] = []
        if ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                for gid in ids:
                    pipe.hgetall(keys.gateway(gid))
                found = await pipe.execute()
            rows = [self._view(str_map(f), full=False) for f in found if f]
        return {
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / page_size)),
            "gateways": rows,
        }

    async def delete(self, gateway_id: str) -> dict[str, Any]:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.gateway(gateway_id))
            pipe.zrem(keys.GATEWAYS, gateway_id)
            deleted, _ = await pipe.execute()
        if not deleted:
            raise NotFound("Gateway was not found", "GatewayNotFound")
        return {"gateway": gateway_id, "deleted": True}

    async def exists(self, gateway_id: str) -> bool:
        return bool(await self.redis.exists(keys.gateway(gateway_id)))

    async def smtp_config(self, gateway_id: str) -> SmtpConfig:
        """The gateway as SMTP settings (password decrypted) for the sender."""
        fields = await self._fields(gateway_id)
        auth = None
        if fields.get("user"):
            password = self.box.decrypt(fields["pass"]) if fields.get("pass") else None
            auth = Auth(user=fields["user"], pass_=password)
        secure = fields.get("secure") == "1"
        return SmtpConfig(
            host=fields.get("host", ""),
            port=int(fields.get("port") or (465 if secure else 587)),
            secure=secure,
            auth=auth,
        )

    async def record_delivery(self, gateway_id: str) -> None:
        key = keys.gateway(gateway_id)
        if not await self.redis.exists(key):
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, "deliveries", 1)
            pipe.hset(key, "lastUse", str(now_ms()))
            await pipe.execute()

    async def record_error(self, gateway_id: str, error: dict[str, Any]) -> None:
        key = keys.gateway(gateway_id)
        if not await self.redis.exists(key):
            return
        value = {"created": now_ms(), "status": "error", **error}
        await self.redis.hset(key, "lastError", json.dumps(value, separators=(",", ":")))
