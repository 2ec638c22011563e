"""Webhook routes (EmailEngine's per-filter webhook targets), read-only.

EmailEngine lets an operator define extra webhook targets, each with a filter and a mapping
function, in its web UI. mailgate has no UI for them yet: routes live in Redis
(``keys.WEBHOOK_ROUTES`` lists the ids, ``keys.webhook_route`` holds each as JSON) and the API
lists and reads them. Nothing creates them through the API, so a fresh instance lists none.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from mailgate.errors import NotFound
from mailgate.store import keys
from mailgate.store.redis import text

# fields of a route in the listing (the full record adds ``v`` and ``content``)
LISTED_FIELDS = (
    "id",
    "name",
    "description",
    "created",
    "updated",
    "enabled",
    "targetUrl",
    "tcount",
    "webhookErrorFlag",
    "customHeaders",
)


def _shape(record: dict[str, Any], *, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {k: record.get(k) for k in LISTED_FIELDS}
    out["enabled"] = bool(out.get("enabled"))
    out["tcount"] = int(out.get("tcount") or 0)
    out["customHeaders"] = out.get("customHeaders") or []
    if full:
        out["v"] = int(record.get("v") or 1)
        content = record.get("content") or {}
        out["content"] = {"fn": content.get("fn"), "map": content.get("map")}
    return out


class WebhookRouteService:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def list_routes(self, page: int, page_size: int) -> dict[str, Any]:
        """One page of routes, oldest first."""
        total = int(await self.redis.zcard(keys.WEBHOOK_ROUTES))
        start = page * page_size
        ids = [
            text(i)
            for i in await self.redis.zrange(keys.WEBHOOK_ROUTES, start, start + page_size - 1)
        ]
        routes: list[dict[str, Any]] = []
        if ids:
            raws = await self.redis.mget([keys.webhook_route(i) for i in ids])
            for route_id, raw in zip(ids, raws, strict=True):
                if raw is not None:
                    record = json.loads(raw)
                    record.setdefault("id", route_id)
                    routes.append(_shape(record, full=False))
        return {
            "total": total,
            "page": page,
            "pages": max(1, -(-total // page_size)),
            "webhooks": routes,
        }

    async def get(self, route_id: str) -> dict[str, Any]:
        raw = await self.redis.get(keys.webhook_route(route_id))
        if raw is None:
            raise NotFound("Requested webhook route was not found", "WebhookRouteNotFound")
        record = json.loads(raw)
        record.setdefault("id", route_id)
        return _shape(record, full=True)
