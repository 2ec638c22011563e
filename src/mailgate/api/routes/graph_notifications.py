"""Microsoft Graph change and lifecycle notifications (public routes: Graph holds no API token).

``POST /v1/graph/notifications/{account}`` and ``POST /v1/graph/lifecycle/{account}``:

- with ``?validationToken=…`` (the subscription handshake): answered at once, 200,
  ``text/plain``, the decoded token as the body;
- otherwise ``{"value": [...]}``: each item whose ``clientState`` matches the account's stored
  subscription (constant-time compare) is queued as a hint for the account's runner, and one
  ``sync`` control message wakes it wherever it runs. Items with a wrong ``clientState`` are
  dropped. The answer is always 202 so Graph does not retry what was refused on purpose.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from mailgate.api.deps import ContainerDep
from mailgate.store import keys
from mailgate.store.control import publish_control
from mailgate.store.redis import str_map

router = APIRouter(prefix="/v1/graph", tags=["Microsoft Graph"], include_in_schema=False)

#: Most hints kept waiting per account (older ones are dropped: a full pass catches up).
MAX_PENDING_HINTS = 10_000
#: Largest notification body read.
MAX_BODY = 1024 * 1024


async def _receive(request: Request, c: Any, account: str) -> Response:
    token = request.query_params.get("validationToken")
    if token is not None:
        return PlainTextResponse(token, status_code=200)
    body = await request.body()
    if len(body) > MAX_BODY:
        return Response(status_code=413)
    try:
        items = json.loads(body or b"{}").get("value") or []
    except (ValueError, AttributeError):
        return Response(status_code=400)
    stored = str_map(await c.redis.hgetall(keys.graph_subscription(account)))
    expected = stored.get("clientState", "")
    hints: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        state = str(item.get("clientState") or "")
        if not expected or not hmac.compare_digest(state.encode(), expected.encode()):
            continue
        data = item.get("resourceData") if isinstance(item.get("resourceData"), dict) else {}
        hint = {
            "changeType": item.get("changeType"),
            "id": (data or {}).get("id"),
            "subscriptionId": item.get("subscriptionId"),
        }
        if item.get("lifecycleEvent"):
            hint = {"lifecycleEvent": item["lifecycleEvent"]}
        hints.append(json.dumps(hint, separators=(",", ":")))
    if hints:
        key = keys.graph_hints(account)
        async with c.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *hints)
            pipe.ltrim(key, -MAX_PENDING_HINTS, -1)
            await pipe.execute()
        await publish_control(c.redis, "sync", account)
    return Response(status_code=202)


@router.post("/notifications/{account}")
async def notifications(account: str, request: Request, c: ContainerDep) -> Response:
    return await _receive(request, c, account)


@router.post("/lifecycle/{account}")
async def lifecycle(account: str, request: Request, c: ContainerDep) -> Response:
    return await _receive(request, c, account)
